//! Lesson L7.1, scheduling classes: how late a thread wakes from a 1 ms absolute sleep
//! (p50/p99/max) under SCHED_OTHER, SCHED_FIFO and SCHED_FIFO pinned to one CPU, while three
//! busy threads compete for the CPUs. The rights that allow real-time priority (RLIMIT_RTPRIO,
//! root, rtkit) are printed first, and RT throttling is read from /proc: why a runaway FIFO loop
//! does not freeze the machine. The course times CPU work instead of wake-ups.
//!
//! Run with: cargo run --release --example l7_1_sched

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Wakes `n` times from an absolute 1 ms sleep (clock_nanosleep, CLOCK_MONOTONIC) and
/// returns how late each wake-up was, in microseconds.
fn lateness_us(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut next = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut next) };
    for _ in 0..n {
        next.tv_nsec += 1_000_000;
        if next.tv_nsec >= 1_000_000_000 {
            next.tv_nsec -= 1_000_000_000;
            next.tv_sec += 1;
        }
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: both timespecs are valid; TIMER_ABSTIME reads `next` as a deadline.
        unsafe {
            libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &next, std::ptr::null_mut());
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
        }
        let late = (now.tv_sec - next.tv_sec) as f64 * 1e6 + (now.tv_nsec - next.tv_nsec) as f64 / 1e3;
        out.push(late);
    }
    out
}

/// This thread's timer slack (ns): how late the kernel may fire its timers to batch them.
fn timer_slack_ns() -> i64 {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack.
    i64::from(unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) })
}

/// Runs the measurement in a fresh thread with `policy`, optionally pinned; returns the
/// lateness samples, the timer slack seen and the error if the policy was refused.
fn measure(policy: i32, pinned: Option<usize>, n: usize) -> (Vec<f64>, i64, Option<String>) {
    std::thread::spawn(move || {
        let refused = set_thread_policy(policy, if policy == libc::SCHED_FIFO { 80 } else { 0 }).err();
        let refused = refused.or_else(|| pinned.and_then(|cpu| pin_thread(cpu).err()));
        if refused.is_some() {
            return (Vec::new(), timer_slack_ns(), refused);
        }
        (lateness_us(n), timer_slack_ns(), None)
    })
    .join()
    .expect("measuring thread")
}

fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|e| format!("unreadable ({e})"), |s| s.trim().to_string())
}

fn main() {
    header("L7.1", "wake-up lateness under SCHED_OTHER and SCHED_FIFO, with busy threads");
    println!("rights: {}", realtime_rights());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = pick(3000, 400);

    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let cases = [
        ("SCHED_OTHER", libc::SCHED_OTHER, None),
        ("SCHED_FIFO 80", libc::SCHED_FIFO, None),
        ("SCHED_FIFO 80, pinned", libc::SCHED_FIFO, Some(cpus - 1)),
    ];
    let mut results = Vec::new();
    for (label, policy, pin) in cases {
        let (late, slack, refused) = measure(policy, pin, n);
        match refused {
            Some(e) => println!("{label}: refused ({e}): not measured"),
            None => {
                println!("{label}: timer slack {slack} ns");
                results.push((label, late));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        b.join().expect("busy thread");
    }
    println!(
        "{cpus} CPUs, 3 busy threads of SCHED_OTHER spinning for {:.1} s, {n} wake-ups per case",
        started.elapsed().as_secs_f64()
    );
    let dists: Vec<(&str, Dist)> =
        results.iter().map(|(l, s)| (*l, report(&format!("{l}: lateness"), s, "us"))).collect();
    let line = dists
        .iter()
        .map(|(l, d)| format!("{l} p50 {:.0} / p99 {:.0} / max {:.0} us", d.p50, d.p99, d.max))
        .collect::<Vec<_>>()
        .join("; ");
    let other = dists.iter().find(|d| d.0 == "SCHED_OTHER").map(|d| d.1);
    let fifo = dists.iter().find(|d| d.0 == "SCHED_FIFO 80").map(|d| d.1);
    let pinned = dists.iter().find(|d| d.0.ends_with("pinned")).map(|d| d.1);
    verdict(
        "max fill time: SCHED_OTHER 25000 us, SCHED_FIFO 3000 us",
        &line,
        &match (other, fifo) {
            (Some(o), Some(f)) => format!(
                "these are wake-up delays, not CPU work: under load SCHED_OTHER woke {:.0} us late at p99 against {:.0} us for FIFO ({:.1}x); the FIFO thread preempts the busy threads as soon as its timer fires, and its timer slack is 0 where SCHED_OTHER's is 50 us (printed above), which alone adds up to 50 us to every OTHER wake-up{}",
                o.p99,
                f.p99,
                o.p99 / f.p99.max(1e-9),
                pinned.map_or(String::new(), |p| format!(
                    "; pinned to one CPU the FIFO p99 was {:.0} us against {:.0} unpinned: pinning {}",
                    p.p99,
                    f.p99,
                    if p.p99 * 2.0 < f.p99 {
                        "helped in this run"
                    } else if p.p99 > f.p99 * 2.0 {
                        "made the tail worse in this run (a pinned thread cannot take the other CPU)"
                    } else {
                        "made no clear difference in this run"
                    }
                ))
            ),
            _ => "SCHED_FIFO was refused here (see the rights line), so only SCHED_OTHER was measured".to_string(),
        },
    );
    let runtime = read_proc("/proc/sys/kernel/sched_rt_runtime_us");
    let period = read_proc("/proc/sys/kernel/sched_rt_period_us");
    let share = match (runtime.parse::<f64>(), period.parse::<f64>()) {
        (Ok(r), Ok(p)) if r >= 0.0 => format!(
            "as read, real-time threads may run {r:.0} us of every {p:.0} us, so a runaway FIFO loop leaves {:.0} ms per second to everything else (RT throttling; -1 would switch it off)",
            (p - r) / 1e3
        ),
        (Ok(_), Ok(_)) => "sched_rt_runtime_us is -1: throttling is off, a runaway FIFO loop can own its CPU".to_string(),
        _ => "the throttling settings were not readable".to_string(),
    };
    verdict(
        "a SCHED_FIFO loop that never sleeps freezes the machine",
        &format!(
            "/proc/sys/kernel/sched_rt_runtime_us = {runtime}, sched_rt_period_us = {period} (read, not exercised)"
        ),
        &share,
    );
    let refs: Vec<(&str, &[f64])> = results.iter().map(|(l, s)| (*l, s.as_slice())).collect();
    percentile_plot("l7_1_sched", &refs, "us late");
}
