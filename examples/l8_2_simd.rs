//! Lesson L8.2, SIMD: a sine oscillator and the f32 -> i16 device conversion, scalar vs
//! vectorised (the compiler's auto-vectorisation of a branch-free loop, and explicit SSE2 on
//! x86_64). Also checks the course's two slips: `_mm_div_epi32` is not an SSE2 instruction, and
//! a Taylor sine without phase wrapping falls apart away from zero.
//!
//! Run with: cargo run --release --example l8_2_simd

mod common;

use std::f64::consts::TAU;
use std::hint::black_box;

use common::*;
use handmade::interleave_i16;

const FRAMES: usize = 4800;

/// sin(2 pi x) for x in [-0.5, 0.5]: an odd polynomial (9th order, Taylor coefficients of
/// sin(y), y = 2 pi x, evaluated after folding to [-0.25, 0.25]); max error ~2e-5 there.
#[inline(always)]
fn sin_cycles(x: f32) -> f32 {
    // Fold x into [-0.25, 0.25] using sin(pi - y) = sin(y), branch-free.
    let folded = if x > 0.25 {
        0.5 - x
    } else if x < -0.25 {
        -0.5 - x
    } else {
        x
    };
    let y = folded * std::f32::consts::TAU;
    let y2 = y * y;
    y * (1.0 + y2 * (-1.0 / 6.0 + y2 * (1.0 / 120.0 + y2 * (-1.0 / 5040.0 + y2 * (1.0 / 362_880.0)))))
}

/// Scalar reference: libm's `sinf` per sample, phase carried in cycles.
#[inline(never)]
fn sine_libm(out: &mut [f32], phase: f32, step: f32) {
    for (i, o) in out.iter_mut().enumerate() {
        let x = (phase + step * i as f32).fract();
        *o = (x * std::f32::consts::TAU).sin();
    }
}

/// The same polynomial on each sample; the loop body is branch-free and independent per
/// sample, so the compiler turns it into SIMD (4 or 8 lanes).
#[inline(never)]
fn sine_poly(out: &mut [f32], phase: f32, step: f32) {
    for (i, o) in out.iter_mut().enumerate() {
        let x = phase + step * i as f32;
        // floor(x + 0.5) as a truncating conversion (x >= 0 here): `f32::floor` is a libm call
        // on baseline x86_64 (no SSE4.1 `roundps`) and would stop the loop vectorising.
        let wrapped = x - (x + 0.5) as i32 as f32; // [-0.5, 0.5)
        *o = sin_cycles(wrapped);
    }
}

/// The polynomial, one sample at a time through `black_box` (no vectorisation).
#[inline(never)]
fn sine_poly_scalar(out: &mut [f32], phase: f32, step: f32) {
    for i in 0..out.len() {
        let i = black_box(i);
        let x = phase + step * i as f32;
        out[i] = sin_cycles(x - (x + 0.5) as i32 as f32);
    }
}

#[inline(never)]
fn convert_scalar(left: &[f32], right: &[f32], out: &mut [i16]) {
    for i in 0..left.len() {
        let i = black_box(i);
        out[2 * i] = (left[i] * 32767.0).round() as i16;
        out[2 * i + 1] = (right[i] * 32767.0).round() as i16;
    }
}

/// Auto-vectorisable rounding: add +-0.5 and truncate (`as` saturates), no libm call.
#[inline(never)]
fn convert_truncating(left: &[f32], right: &[f32], out: &mut [i16]) {
    let round = |s: f32| {
        let v = s * 32767.0;
        (v + 0.5f32.copysign(v)) as i16
    };
    for ((frame, &l), &r) in out.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = round(l);
        frame[1] = round(r);
    }
}

/// Explicit SSE2: 4 frames per step; `cvtps2dq` rounds to nearest-even, `packssdw` saturates.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn convert_sse2(left: &[f32], right: &[f32], out: &mut [i16]) {
    use std::arch::x86_64::*;
    assert!(left.len() == right.len() && out.len() == 2 * left.len() && left.len() % 4 == 0);
    for i in (0..left.len()).step_by(4) {
        // SAFETY: SSE2 is part of the x86_64 baseline; `i + 4 <= len` for both inputs and
        // `2 * i + 8 <= out.len()`, and the unaligned load/store intrinsics accept any address.
        unsafe {
            let scale = _mm_set1_ps(32767.0);
            let l = _mm_mul_ps(_mm_loadu_ps(left.as_ptr().add(i)), scale);
            let r = _mm_mul_ps(_mm_loadu_ps(right.as_ptr().add(i)), scale);
            let lo = _mm_cvtps_epi32(_mm_unpacklo_ps(l, r)); // l0 r0 l1 r1
            let hi = _mm_cvtps_epi32(_mm_unpackhi_ps(l, r)); // l2 r2 l3 r3
            _mm_storeu_si128(out.as_mut_ptr().add(2 * i).cast(), _mm_packs_epi32(lo, hi));
        }
    }
}

/// The course's Taylor sine of the unwrapped phase in radians (no range reduction).
fn taylor_unwrapped(y: f32) -> f32 {
    let y2 = y * y;
    y * (1.0 - y2 / 6.0 + y2 * y2 / 120.0 - y2 * y2 * y2 / 5040.0)
}

fn main() {
    header("L8.2", "scalar vs SIMD sine and sample conversion");
    let samples = pick(5_000, 500);
    let step = (440.0 / 48_000.0) as f32;
    let mut a = vec![0.0f32; FRAMES];
    let mut b = vec![0.0f32; FRAMES];
    let mut c = vec![0.0f32; FRAMES];
    sine_libm(&mut a, 0.1, step);
    sine_poly(&mut b, 0.1, step);
    sine_poly_scalar(&mut c, 0.1, step);
    let exact = |i: usize| (TAU * (0.1 + step as f64 * i as f64)).sin();
    let err = |s: &[f32]| (0..FRAMES).map(|i| (s[i] as f64 - exact(i)).abs()).fold(0.0, f64::max);
    println!("max error vs f64 sin: libm sinf {:.2e}, polynomial {:.2e}", err(&a), err(&b));
    let t_libm = time_ns(samples, 1, || sine_libm(black_box(&mut a), 0.1, step));
    let t_poly_s = time_ns(samples, 1, || sine_poly_scalar(black_box(&mut c), 0.1, step));
    let t_poly = time_ns(samples, 1, || sine_poly(black_box(&mut b), 0.1, step));
    let d_libm = report("sine 4800, libm sinf (scalar)", &t_libm, "ns");
    let d_poly_s = report("sine 4800, polynomial, scalar", &t_poly_s, "ns");
    let d_poly = report("sine 4800, polynomial, vectorised", &t_poly, "ns");

    let left: Vec<f32> = (0..FRAMES).map(|i| (i as f32 * 0.013).sin() * 1.2).collect();
    let right: Vec<f32> = left.iter().map(|s| -s * 0.7).collect();
    let mut o1 = vec![0i16; 2 * FRAMES];
    let mut o2 = vec![0i16; 2 * FRAMES];
    let t_cs = time_ns(samples, 1, || convert_scalar(black_box(&left), black_box(&right), black_box(&mut o1)));
    let t_cv = time_ns(samples, 1, || interleave_i16(black_box(&left), black_box(&right), black_box(&mut o2)));
    let d_cs = report("convert 4800 frames, scalar", &t_cs, "ns");
    let d_cv = report("convert 4800, platform interleave_i16", &t_cv, "ns");
    assert_eq!(o1, o2, "the two conversions must agree");
    let mut o4 = vec![0i16; 2 * FRAMES];
    let t_ct = time_ns(samples, 1, || convert_truncating(black_box(&left), black_box(&right), black_box(&mut o4)));
    let d_ct = report("convert 4800, +-0.5 and truncate", &t_ct, "ns");
    let differ4 = o1.iter().zip(&o4).filter(|(x, y)| x != y).count();
    println!("+-0.5-and-truncate vs scalar: {differ4} samples differ");
    #[cfg(target_arch = "x86_64")]
    let sse = {
        let mut o3 = vec![0i16; 2 * FRAMES];
        let t = time_ns(samples, 1, || convert_sse2(black_box(&left), black_box(&right), black_box(&mut o3)));
        let differ = o1.iter().zip(&o3).filter(|(x, y)| x != y).count();
        let d = report("convert 4800 frames, SSE2", &t, "ns");
        println!("SSE2 vs scalar: {differ} samples differ (cvtps2dq rounds halves to even, `round` away from zero)");
        format!(", explicit SSE2 {:.1}x", d_cs.p50 / d.p50)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sse = String::new();

    verdict(
        "SIMD computes 4 samples per instruction, so about 4x faster",
        &format!(
            "sine: polynomial vectorised {:.1}x faster than scalar polynomial, {:.1}x than libm; conversion: interleave_i16 {:.1}x, +-0.5-and-truncate {:.1}x{sse} faster than scalar",
            d_poly_s.p50 / d_poly.p50,
            d_libm.p50 / d_poly.p50,
            d_cs.p50 / d_cv.p50,
            d_cs.p50 / d_ct.p50
        ),
        &if d_cs.p50 / d_cv.p50 < 1.5 {
            format!(
                "interleave_i16 did not vectorise here: `f32::round` is a libm call on baseline x86_64 (SSE4.1's `roundps` is not enabled), so each sample pays a call; rounding by +-0.5 and truncating, or cvtps2dq in SSE2, removes it ({:.1}x)",
                d_cs.p50 / d_ct.p50
            )
        } else {
            "the branch-free loop vectorised; the gain depends on lane count (SSE 4, AVX2 8) and on memory bandwidth".to_string()
        },
    );
    let wrapped_err = (0..1000)
        .map(|k| {
            let y = k as f32 * 0.02;
            ((y as f64).sin()
                - sin_cycles((y / std::f32::consts::TAU) - ((y / std::f32::consts::TAU) + 0.5).floor()) as f64)
                .abs()
        })
        .fold(0.0, f64::max);
    let unwrapped_err = (0..1000)
        .map(|k| {
            let y = k as f32 * 0.02;
            ((y as f64).sin() - taylor_unwrapped(y) as f64).abs()
        })
        .fold(0.0, f64::max);
    verdict(
        "L8.2's SIMD code divides with _mm_div_epi32 and uses a Taylor sine of the raw phase",
        &format!(
            "over 0..20 rad the 7th-order Taylor sine without wrapping errs by up to {unwrapped_err:.1e}; with wrapping the polynomial errs by {wrapped_err:.1e}"
        ),
        "_mm_div_epi32 is an Intel SVML library routine, not an SSE2 (or any x86) instruction: there is no packed integer divide, so multiply by a reciprocal in float; and a Taylor series is only accurate near 0, so wrap the phase first",
    );
    Plot::new()
        .series((0..1000).map(|k| {
            let y = k as f64 * 0.02;
            (y, (taylor_unwrapped(y as f32) as f64).clamp(-2.0, 2.0))
        }))
        .series((0..1000).map(|k| (k as f64 * 0.02, (k as f64 * 0.02).sin())))
        .save(
            "l8_2_simd",
            "x: phase in radians 0..20, y: value clamped to +-2; red: Taylor sine without wrapping, blue: sin",
        );
    percentile_plot(
        "l8_2_simd_timings",
        &[
            ("libm sinf", &t_libm),
            ("poly scalar", &t_poly_s),
            ("poly vectorised", &t_poly),
            ("convert scalar", &t_cs),
            ("convert vectorised", &t_cv),
        ],
        "ns per 4800-frame buffer",
    );
}
