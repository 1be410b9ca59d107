//! Machine stalls (issue 12): can this machine hold a few milliseconds of sound at all? One
//! `SCHED_FIFO` 90 probe thread pinned to each CPU wakes every 2 ms on absolute deadlines
//! (`clock_nanosleep`), beside busy threads at normal priority. A real-time thread is late by
//! tens of µs on a machine that is its own; when every CPU's probe is late by milliseconds at
//! the same instant, nothing in this machine's scheduler held them up (a FIFO thread on each
//! CPU, no two of them competing): the whole machine stopped, which on a virtual machine is
//! its host taking the CPUs away. The kernel counts that as steal time (`/proc/stat`), printed
//! beside it. No sound server or platform runs; a stall seen here hits them all alike, and a
//! buffer shorter than the stall cannot ride it out. Each stop is printed with its UTC time,
//! to be found in another tool's log (a recording's gaps, `latency_report`).
//!
//! `MACHINE_STALLS_SECONDS` (default 20), `MACHINE_STALLS_BUSY` busy threads (default 3, the
//! load of `latency_report`), `MACHINE_STALLS_LATE_MS` the lateness counted as a stall
//! (default 3).
//! Run with: cargo run --release --example machine_stalls

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

const PERIOD_NS: i64 = 2_000_000;
/// Wake-ups on different CPUs this close together are one stall of the machine.
const TOGETHER_NS: i64 = 1_000_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("machine_stalls: {name}={v} is not a number");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

fn now_ns() -> i64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// One CPU's probe: every wake-up's lateness (ns), and each stall as (wake-up time, lateness).
struct Probe {
    cpu: usize,
    late: Vec<f64>,
    stalls: Vec<(i64, i64)>,
    refused: Option<String>,
}

fn probe(cpu: usize, start_ns: i64, end_ns: i64, stall_ns: i64) -> Probe {
    let wakeups = ((end_ns - start_ns) / PERIOD_NS) as usize + 1;
    let (mut late, mut stalls) = (Vec::with_capacity(wakeups), Vec::with_capacity(wakeups));
    let refused = pin_thread(cpu).err().or_else(|| set_thread_policy(libc::SCHED_FIFO, 90).err());
    let mut deadline = start_ns;
    while deadline < end_ns {
        let at = libc::timespec { tv_sec: deadline / 1_000_000_000, tv_nsec: deadline % 1_000_000_000 };
        // SAFETY: `at` is a valid timespec; TIMER_ABSTIME reads it as a deadline, no remainder.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &at, std::ptr::null_mut()) };
        let woke = now_ns();
        let lateness = woke - deadline;
        late.push(lateness as f64);
        if lateness > stall_ns {
            stalls.push((woke - start_ns, lateness));
        }
        // The next deadline on the grid after now: one stall is one event, not a burst.
        deadline += PERIOD_NS * (1 + lateness / PERIOD_NS);
    }
    Probe { cpu, late, stalls, refused }
}

/// Steal ticks per CPU (`cpuN ... steal` in /proc/stat), in clock ticks.
fn steal_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| l.split_whitespace().nth(8).and_then(|v| v.parse().ok()).unwrap_or(0))
        .collect()
}

fn main() {
    let seconds: f64 = env_or("MACHINE_STALLS_SECONDS", 20.0);
    let busy: usize = env_or("MACHINE_STALLS_BUSY", 3);
    let stall_ms: f64 = env_or("MACHINE_STALLS_LATE_MS", 3.0);
    if !(seconds > 0.0 && stall_ms > 0.0) {
        eprintln!("machine_stalls: MACHINE_STALLS_SECONDS and MACHINE_STALLS_LATE_MS must be above 0");
        std::process::exit(2);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine stalls: {seconds} s, a SCHED_FIFO 90 probe pinned to each of {cpus} CPUs waking every {} ms, \
         beside {busy} busy threads; a wake-up over {stall_ms} ms late is a stall",
        PERIOD_NS / 1_000_000
    );
    println!("rights: {}", realtime_rights());

    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..busy)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    let tick_ms = 10.0; // /proc/stat counts in USER_HZ, 100 a second by the kernel's ABI
    let steal_before = steal_ticks();
    let start_ns = now_ns() + 50_000_000; // every probe starts on the same grid
                                          // The wall clock at `start_ns`, so a stop can be found in another tool's log.
    let wall_start =
        std::time::SystemTime::now() + std::time::Duration::from_nanos((start_ns - now_ns()).max(0) as u64);
    let end_ns = start_ns + (seconds * 1e9) as i64;
    let stall_ns = (stall_ms * 1e6) as i64;
    let probes: Vec<Probe> = (0..cpus)
        .map(|cpu| std::thread::spawn(move || probe(cpu, start_ns, end_ns, stall_ns)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("probe thread"))
        .collect();
    let steal_after = steal_ticks();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }

    for p in &probes {
        if let Some(why) = &p.refused {
            println!("cpu{}: not pinned at SCHED_FIFO ({why}): its lateness is the scheduler's too", p.cpu);
        }
        let d = dist(&p.late);
        println!(
            "cpu{}: {} wake-ups, late p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms; {} stalls",
            p.cpu,
            p.late.len(),
            d.p50 / 1e6,
            d.p99 / 1e6,
            d.max / 1e6,
            p.stalls.len()
        );
    }
    let steal: Vec<String> = steal_before
        .iter()
        .zip(&steal_after)
        .enumerate()
        .map(|(cpu, (a, b))| format!("cpu{cpu} {:.0} ms", b.saturating_sub(*a) as f64 * tick_ms))
        .collect();
    println!("steal time (the host ran something else on this machine's CPUs): {}", steal.join(", "));

    if cpus < 2 {
        println!("one CPU: a stall of the machine cannot be told from one of its scheduler");
        return;
    }
    // A stall of the whole machine: every CPU's probe woke late within TOGETHER_NS of the first.
    let whole: Vec<(i64, i64)> = probes[0]
        .stalls
        .iter()
        .filter_map(|&(at, late)| {
            let others: Option<Vec<i64>> = probes[1..]
                .iter()
                .map(|p| p.stalls.iter().find(|(t, _)| (t - at).abs() <= TOGETHER_NS).map(|&(_, l)| l))
                .collect();
            others.map(|o| (at, o.into_iter().fold(late, i64::min)))
        })
        .collect();
    let utc = |t: i64| {
        let wall = wall_start + std::time::Duration::from_nanos(t.max(0) as u64);
        let ms = wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()) % 86_400_000;
        format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    };
    let at: Vec<String> =
        whole.iter().map(|&(t, l)| format!("{:.2}s:{:.1}ms@{}", t as f64 / 1e9, l as f64 / 1e6, utc(t))).collect();
    println!(
        "whole machine stalled (every CPU's probe late at once; the least late given, and when, UTC): {} times{}{}",
        whole.len(),
        if whole.is_empty() { "" } else { ": " },
        at.join(" ")
    );
    if whole.len() >= 2 {
        let mut gaps: Vec<f64> = whole.windows(2).map(|w| (w[1].0 - w[0].0) as f64 / 1e9).collect();
        gaps.sort_by(f64::total_cmp);
        println!("time between them: min {:.2} s, median {:.2} s", gaps[0], gaps[gaps.len() / 2]);
    }
}
