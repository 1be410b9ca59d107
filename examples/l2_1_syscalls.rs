//! Lesson L2.1, kernel and user space: what one trivial system call costs next to a plain
//! function call and a vDSO call (clock_gettime, which never enters the kernel), each timed in
//! its own runs as p50/p99/max. The course times one interval, divides it by itself and prints
//! a fixed "~10x"; here each figure comes from its own samples.
//!
//! Run with: cargo run --release --example l2_1_syscalls

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::*;

/// A real system call every time: `syscall(SYS_getppid)` (glibc's wrapper could cache).
#[inline(never)]
fn system_call() -> i64 {
    // SAFETY: getppid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

/// A plain call the compiler cannot inline or remove (called through a `black_box` pointer).
#[inline(never)]
fn plain_call(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// The kernel's view of its speculative-execution mitigations (they add to each kernel entry).
fn mitigations() -> String {
    ["meltdown", "spectre_v2", "retbleed"]
        .iter()
        .map(|name| {
            let path = format!("/sys/devices/system/cpu/vulnerabilities/{name}");
            let text = std::fs::read_to_string(path).unwrap_or_else(|_| "not readable".into());
            format!("{name}: {}", text.trim())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The kernel's current clocksource (the vDSO serves clock_gettime only from some, e.g. tsc).
fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map_or_else(|_| "not readable".into(), |s| s.trim().to_string())
}

fn main() {
    header("L2.1", "a system call vs a function call");
    let samples = pick(20_000, 2_000);
    let batch = 100;
    // The syscall really reaches the kernel: its answer is the parent's pid, as libc says.
    // SAFETY: getppid has no preconditions.
    let libc_ppid = i64::from(unsafe { libc::getppid() });
    println!("syscall(SYS_getppid) = {} (libc getppid = {libc_ppid})", system_call());
    println!("kernel mitigations (sysfs, not measured): {}", mitigations());
    println!("clock overhead per sample: ~{:.0} ns (in the single-call figures only)", clock_overhead_ns());

    let call: fn(u64) -> u64 = black_box(plain_call);
    let sys_one = time_ns(samples, 1, || {
        black_box(system_call());
    });
    let sys = time_ns(samples, batch, || {
        black_box(system_call());
    });
    let fun = time_ns(samples, batch, || {
        black_box(call(black_box(7)));
    });
    let vdso = time_ns(samples, batch, || {
        black_box(Instant::now());
    });
    let s1 = report("getppid syscall, one per sample", &sys_one, "ns");
    let s = report("getppid syscall, 100 per sample", &sys, "ns/call");
    let f = report("function call, 100 per sample", &fun, "ns/call");
    let v = report("vDSO clock_gettime, 100 per sample", &vdso, "ns/call");
    verdict(
        "a system call (getpid 150 ns) is ~10x a function call (0.5 ns)",
        &format!(
            "p50 syscall {:.1} ns, function call {:.2} ns: {:.0}x; one syscall per sample p50 {:.0} ns, p99 {:.0} ns, max {:.0} ns; a vDSO clock read {:.1} ns",
            s.p50,
            f.p50,
            s.p50 / f.p50,
            s1.p50,
            s1.p99,
            s1.max,
            v.p50
        ),
        &format!(
            "each figure is its own {samples} samples, so the ratio ({:.0}x) is two measured times divided, not one interval reused; the clock read (vDSO, clocksource {}) cost {}",
            s.p50 / f.p50,
            clocksource(),
            if v.p50 * 3.0 < s.p50 {
                format!("{:.0}x less than the syscall: it did not pay for entering the kernel", s.p50 / v.p50)
            } else {
                format!("{:.1}x the syscall: with this clocksource it seems to enter the kernel too", v.p50 / s.p50)
            }
        ),
    );
    percentile_plot(
        "l2_1_syscalls",
        &[("syscall, one per sample", &sys_one), ("syscall", &sys), ("function call", &fun), ("vDSO clock", &vdso)],
        "ns per call",
    );
}
