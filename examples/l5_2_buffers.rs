//! Lesson L5.2, buffer architecture: how many bytes and milliseconds one sound buffer holds for
//! common rates, frame rates and formats, and what the device write's copy (interleave and
//! convert to i16) costs for one 60 fps frame, with the context switches and page faults each
//! timed sample took (getrusage RUSAGE_THREAD around it), so the tail is explained by counts.
//!
//! Run with: cargo run --release --example l5_2_buffers

mod common;

use std::hint::black_box;

use common::*;
use handmade::interleave_i16;

fn main() {
    header("L5.2", "sound buffer sizes and the copy cost of the device write");
    println!("{:>6} {:>4} {:>7} {:>4} {:>7} {:>8} {:>8}", "rate", "fps", "frames", "ch", "format", "bytes", "ms");
    for (rate, fps) in [(48_000u32, 60u32), (48_000, 30), (44_100, 60), (96_000, 60)] {
        let frames = rate / fps;
        for (channels, format, bytes_per_sample) in [(2u32, "i16", 2u32), (2, "f32", 4), (1, "i16", 2)] {
            let bytes = frames * channels * bytes_per_sample;
            let ms = frames as f64 * 1e3 / rate as f64;
            println!("{rate:>6} {fps:>4} {frames:>7} {channels:>4} {format:>7} {bytes:>8} {ms:>8.2}");
        }
    }
    let bytes_800 = 800 * 2 * std::mem::size_of::<i16>();
    verdict(
        "the course's Ex3 prints 1920 bytes for 800 stereo i16 frames",
        &format!("800 frames x 2 channels x 2 bytes = {bytes_800} bytes, {:.2} ms at 48 kHz", 800.0 * 1e3 / 48_000.0),
        &format!(
            "computed here: 1920 bytes / (2 channels x 2 bytes) = {} frames = {:.1} ms at 48 kHz; the size is frames x channels x bytes per sample",
            1920 / 4,
            1920.0 / 4.0 * 1e3 / 48_000.0
        ),
    );
    let frames_7680 = 7680 / 4;
    verdict(
        "L5.2: a 7680-byte buffer holds 66.7 ms",
        &format!(
            "7680 bytes / (2 channels x 2 bytes) = {frames_7680} frames = {:.1} ms at 48 kHz stereo i16",
            frames_7680 as f64 * 1e3 / 48_000.0
        ),
        &format!(
            "computed here: 66.7 ms at 48 kHz is {} frames ({} bytes); 7680 bytes at 48 kHz is {:.1} ms",
            (0.066_67f64 * 48_000.0).round(),
            (0.066_67f64 * 48_000.0).round() * 4.0,
            frames_7680 as f64 * 1e3 / 48_000.0
        ),
    );

    // The copy cost of the device write: convert the game's SoA f32 channels to interleaved i16.
    let left: Vec<f32> = (0..800).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
    let right: Vec<f32> = left.iter().map(|s| -s).collect();
    let mut out = vec![0i16; 1600];
    let mut bytes = vec![0u8; bytes_800];
    let src = vec![7u8; bytes_800];
    let samples = pick(20_000, 2_000);
    let (convert, switches, faults) = time_counted(samples, || {
        interleave_i16(black_box(&left), black_box(&right), black_box(&mut out));
    });
    let memcpy = time_ns(samples, 1, || {
        black_box(&mut bytes).copy_from_slice(black_box(&src));
    });
    println!("clock overhead per sample: ~{:.0} ns (included below)", clock_overhead_ns());
    let c = report("interleave+convert 800 frames", &convert, "ns");
    let m = report("memcpy 3200 bytes", &memcpy, "ns");
    verdict(
        "the copy into the device buffer is negligible next to a 16.7 ms frame",
        &format!(
            "convert p50 {:.2} us ({:.4}% of 16.7 ms), p99 {:.2} us; a plain 3200-byte memcpy p50 {:.2} us",
            c.p50 / 1e3,
            c.p50 / 16_666_667.0 * 100.0,
            c.p99 / 1e3,
            m.p50 / 1e3
        ),
        &tail_why(&convert, &switches, &faults, c.p50),
    );
    percentile_plot(
        "l5_2_buffers",
        &[("interleave+convert", &convert), ("memcpy 3200 B", &memcpy)],
        "ns per 800-frame buffer",
    );
}

/// This thread's (voluntary + involuntary context switches, minor page faults) so far.
fn thread_counts() -> (i64, i64) {
    // SAFETY: `getrusage` fills the zeroed struct we pass; RUSAGE_THREAD is valid on Linux.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    (usage.ru_nvcsw + usage.ru_nivcsw, usage.ru_minflt)
}

/// Times `op` one call per sample (ns) and counts, around each sample, the context switches
/// and page faults this thread took (the getrusage calls sit outside the timed span, so the
/// count window is slightly wider than the time window: it can only over-count).
fn time_counted(samples: usize, mut op: impl FnMut()) -> (Vec<f64>, Vec<i64>, Vec<i64>) {
    for _ in 0..100 {
        op();
    }
    let (mut times, mut switches, mut faults) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        let (s0, f0) = thread_counts();
        let start = std::time::Instant::now();
        op();
        let ns = start.elapsed().as_nanos() as f64;
        let (s1, f1) = thread_counts();
        times.push(ns);
        switches.push(s1 - s0);
        faults.push(f1 - f0);
    }
    (times, switches, faults)
}

/// The "why" of the copy cost's tail, from the counts taken around each sample.
fn tail_why(times: &[f64], switches: &[i64], faults: &[i64], p50: f64) -> String {
    let slowest = (0..times.len()).max_by(|&a, &b| times[a].total_cmp(&times[b])).expect("samples");
    let with: Vec<f64> = (0..times.len()).filter(|&i| switches[i] > 0).map(|i| times[i]).collect();
    let without: Vec<f64> = (0..times.len()).filter(|&i| switches[i] == 0).map(|i| times[i]).collect();
    let max_without = without.iter().copied().fold(0.0, f64::max);
    println!(
        "samples with a context switch counted: {} of {}; slowest sample {:.1} us with {} switch(es), {} page fault(s); slowest sample without a switch {:.1} us",
        with.len(),
        times.len(),
        times[slowest] / 1e3,
        switches[slowest],
        faults[slowest],
        max_without / 1e3
    );
    let cause = if switches[slowest] > 0 {
        format!(
            "the slowest sample ({:.0} us) spanned {} context switch(es) of this thread (getrusage around each sample): it was switched out, not copying; without a switch the max was {:.1} us",
            times[slowest] / 1e3,
            switches[slowest],
            max_without / 1e3
        )
    } else if faults[slowest] > 0 {
        format!(
            "the slowest sample ({:.0} us) took {} page fault(s) and no context switch",
            times[slowest] / 1e3,
            faults[slowest]
        )
    } else {
        format!(
            "the slowest sample ({:.1} us) had no context switch or page fault counted: this run does not show its cause (interrupts and cache misses are not counted)",
            times[slowest] / 1e3
        )
    };
    format!("true at p50 ({:.1} us of 16 667 us); {cause}", p50 / 1e3)
}
