//! Lesson L5.3, sine math and phase: a tone rendered buffer by buffer with the phase restarted
//! in each buffer (the bug) versus carried across buffers, with the discontinuities counted; and
//! how far time kept in `f32` drifts after 2^24 samples (about 5.8 minutes at 48 kHz), both as
//! `t += 1/48000` and as the course's own `sin(2 pi f (float)index / rate)`, whose phase is
//! quantised to the spacing of f32 values around it.
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
        &format!(
            "computed here: {BUFFER} frames hold {:.2} cycles of {HZ} Hz, so each restart jumps from {:.2} of a cycle back to 0 (a boundary that landed on a whole cycle would hide it)",
            BUFFER as f64 * HZ / RATE,
            (BUFFER as f64 * HZ / RATE).fract()
        ),
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
        &format!(
            "measured at the end: f32 values next to t = {t32:.1} s are {:.2e} s apart, {:.2}x the {:.2e} s step added each sample, so every addition rounds; keep a u64 sample index or an f64 phase wrapped to 0..1",
            f32::from_bits(t32.to_bits() + 1) - t32,
            (f32::from_bits(t32.to_bits() + 1) - t32) / dt32,
            dt32
        ),
    );

    course_index_formula();

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

/// The course's formula in f32: t = (float)index / rate, phase = 2 pi f t.
fn course_phase(index: u32) -> f32 {
    let t = index as f32 / RATE as f32;
    2.0 * std::f32::consts::PI * HZ as f32 * t
}

/// Over `count` samples from `start`: the smallest step between distinct f32 phases (their
/// quantisation), the max phase error against the exact phase, and the max sample error.
fn quantisation(start: u32, count: u32) -> (f64, f64, f64) {
    let (mut step, mut phase_err, mut sample_err) = (f64::MAX, 0.0f64, 0.0f64);
    let mut previous = course_phase(start);
    for index in start..start + count {
        let phase = course_phase(index);
        let exact = TAU * HZ * index as f64 / RATE;
        if phase != previous {
            step = step.min((phase as f64 - previous as f64).abs());
        }
        previous = phase;
        phase_err = phase_err.max((phase as f64 - exact).abs());
        sample_err = sample_err.max((phase.sin() as f64 - exact.sin()).abs());
    }
    (step, phase_err, sample_err)
}

fn course_index_formula() {
    let count = pick(48_000, 4_800);
    let at_58 = 1u32 << 24; // 5.8 minutes
    let at_47 = (47.0 * 60.0 * RATE) as u32; // 47 minutes
    let (step_58, err_58, sample_58) = quantisation(at_58, count);
    let (step_47, err_47, sample_47) = quantisation(at_47, count);
    println!(
        "course formula, {count} samples from index {at_58} ({:.1} min): phase step {step_58:.4} rad, phase error up to {err_58:.4} rad, sample error up to {sample_58:.4}",
        at_58 as f64 / RATE / 60.0
    );
    println!(
        "course formula, {count} samples from index {at_47} ({:.1} min): phase step {step_47:.4} rad, phase error up to {err_47:.4} rad, sample error up to {sample_47:.4}",
        at_47 as f64 / RATE / 60.0
    );
    let overflow_hours = i32::MAX as f64 / RATE / 3600.0;
    verdict(
        "L5.3's sin(2 pi f (float)index / rate) recomputes each sample from the index, so it cannot drift",
        &format!(
            "phase steps of {step_58:.4} rad at {:.1} min and {step_47:.3} rad at 47 min; phase errors up to {err_58:.4} and {err_47:.3} rad; an int32 index overflows after {overflow_hours:.1} h",
            at_58 as f64 / RATE / 60.0
        ),
        &format!(
            "measured above: the f32 phase 2 pi f t is {:.3e} rad at {:.1} min and f32 values there are {step_58:.4} rad apart, so the phase moves in steps instead of by {:.4} rad per sample; keep the phase in cycles wrapped to [0, 1), or the index as u64 and the phase in f64 (the int32 limit is i32::MAX / 48000 s)",
            course_phase(at_58) as f64,
            at_58 as f64 / RATE / 60.0,
            TAU * HZ / RATE
        ),
    );
    let x = 16.08f64;
    verdict(
        "L5.3: sin(16.08) is about -0.9",
        &format!("sin(16.08) = {:.4} (f64), sinf(16.08) = {:.4}", x.sin(), (x as f32).sin()),
        &format!(
            "computed here: 16.08 rad is {:.4} rad past 5 pi, and sin(5 pi + a) = -sin(a) = {:.4}",
            x - 5.0 * std::f64::consts::PI,
            -(x - 5.0 * std::f64::consts::PI).sin()
        ),
    );
}
