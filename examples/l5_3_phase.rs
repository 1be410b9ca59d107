//! Lesson L5.3, sine math and phase: a tone rendered buffer by buffer with the phase restarted
//! in each buffer (the bug) versus carried across buffers, with the discontinuities counted; and
//! how far time kept in `f32` drifts after 2^24 samples (about 5.8 minutes at 48 kHz).
//!
//! Run with: cargo run --release --example l5_3_phase

mod common;

use std::f64::consts::TAU;

use common::*;

const RATE: f64 = 48_000.0;
const HZ: f64 = 440.0;
const BUFFER: usize = 800;

/// One buffer whose phase starts at 0 every time (what recomputing `sin(2 pi f t)` from a
/// per-buffer `t` does).
fn render_restarting(out: &mut [f32]) {
    for (i, s) in out.iter_mut().enumerate() {
        *s = (TAU * HZ * i as f64 / RATE).sin() as f32;
    }
}

/// One buffer continuing from `phase` (cycles, kept in 0..1 so it never loses precision).
fn render_continuous(out: &mut [f32], phase: &mut f64) {
    for s in out.iter_mut() {
        *s = (TAU * *phase).sin() as f32;
        *phase = (*phase + HZ / RATE).fract();
    }
}

/// Sample-to-sample jumps larger than the steepest step a sine of this pitch can make.
fn count_discontinuities(signal: &[f32]) -> usize {
    let max_step = (TAU * HZ / RATE) as f32 * 1.01 + 1e-6;
    signal.windows(2).filter(|w| (w[1] - w[0]).abs() > max_step).count()
}

fn main() {
    header("L5.3", "phase continuity across buffers, and f32 time drift");
    let buffers = pick(600, 60);
    let mut broken = vec![0.0f32; buffers * BUFFER];
    let mut continuous = vec![0.0f32; buffers * BUFFER];
    let mut phase = 0.0;
    for b in 0..buffers {
        render_restarting(&mut broken[b * BUFFER..(b + 1) * BUFFER]);
        render_continuous(&mut continuous[b * BUFFER..(b + 1) * BUFFER], &mut phase);
    }
    let (nb, nc) = (count_discontinuities(&broken), count_discontinuities(&continuous));
    println!("buffers: {buffers} x {BUFFER} frames of {HZ} Hz at {RATE} Hz");
    println!("discontinuities: restarting phase={nb} continuous phase={nc}");
    verdict(
        "restarting the phase each buffer clicks once per buffer; carrying it does not",
        &format!("{nb} discontinuities in {} buffer boundaries with the restart, {nc} when carried", buffers - 1),
        "800 frames hold 7.33 cycles of 440 Hz, so each restart jumps from mid-cycle back to 0 (a boundary that happened to land on a whole cycle would hide it)",
    );

    // f32 time: t += 1/48000 in f32, compared with the exact n / 48000.
    let n_total: u64 = 1 << 24;
    let mut t32 = 0.0f32;
    let dt32 = (1.0 / RATE) as f32;
    let mut n32 = 0.0f32;
    let mut drift_points = Vec::new();
    for n in 0..n_total {
        t32 += dt32;
        n32 += 1.0;
        if n % (1 << 16) == 0 {
            drift_points.push((n as f64 / RATE / 60.0, t32 as f64 - (n + 1) as f64 / RATE));
        }
    }
    let exact = n_total as f64 / RATE;
    let drift = t32 as f64 - exact;
    let stuck = n32 + 1.0 == n32;
    println!(
        "after 2^24 samples ({:.2} min): f32 time={t32:.4} s exact={exact:.4} s drift={drift:+.4} s",
        exact / 60.0
    );
    println!(
        "phase error at {HZ} Hz: {:.1} cycles; an f32 sample counter stops at {n32} (adding 1 changes nothing: {stuck})",
        drift * HZ
    );
    verdict(
        "L5.3 keeps time in f32; fine for a short test tone",
        &format!("after {:.1} minutes the f32 clock is {drift:+.3} s off ({:.0} cycles of {HZ} Hz)", exact / 60.0, (drift * HZ).abs()),
        "f32 has a 24-bit mantissa: once t is large, each +1/48000 rounds; keep a u64 sample index or an f64 phase wrapped to 0..1",
    );

    // Picture: two buffer boundaries of each signal.
    let window = BUFFER - 60..BUFFER * 2 + 60;
    Plot::new()
        .series(window.clone().map(|i| (i as f64, broken[i] as f64)))
        .series(window.clone().map(|i| (i as f64, continuous[i] as f64 * 0.9)))
        .marker(BUFFER as f64)
        .marker(2.0 * BUFFER as f64)
        .save("l5_3_phase", "x: sample index, y: amplitude; red: restarting phase, blue: continuous (scaled 0.9); dashed: buffer boundaries");
    Plot::new().series(drift_points).save("l5_3_phase_drift", "x: minutes, y: f32 time minus exact time in seconds");
}
