//! Lesson L8.2, SIMD: a sine oscillator and the f32 -> i16 device conversion, scalar vs
//! vectorised (the compiler's auto-vectorisation of a branch-free loop, and explicit SSE2 on
//! x86_64). Each sine method's error is measured on the same exactly rounded phase, the course's
//! 5th-order Taylor sine is measured on [-pi, pi] and unwrapped, and the lesson disassembles
//! itself (`objdump -d`, when installed) to show which loops the compiler really vectorised.
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

/// The same polynomial on each sample, written so the compiler may vectorise it (independent
/// samples, no calls); how much it did is read from the disassembly at run time.
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

/// The same rounding with the clamp done in float (packed max/min) and a conversion that need
/// not saturate, so the compiler can use packed `cvttps2dq`.
#[inline(never)]
fn convert_clamp_first(left: &[f32], right: &[f32], out: &mut [i16]) {
    let round = |s: f32| {
        let v = (s * 32767.0).clamp(-32768.0, 32767.0);
        let r = v + 0.5f32.copysign(v);
        // SAFETY: `to_int_unchecked` needs a finite value in i32's range: the inputs here are
        // finite (built from `sin` below, checked in `main`) and `r` is within +-32768.5.
        let i: i32 = unsafe { r.to_int_unchecked() };
        i as i16 // in -32768..=32767, so the truncating `as` keeps the value
    };
    for ((frame, &l), &r) in out.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = round(l);
        frame[1] = round(r);
    }
}

/// The course's Taylor sine: 5th order, y - y^3/6 + y^5/120, of the phase in radians.
fn taylor5(y: f32) -> f32 {
    let y2 = y * y;
    y * (1.0 - y2 / 6.0 + y2 * y2 / 120.0)
}

/// Instruction counts of one function of this executable, from `objdump -d`.
#[derive(Default, Debug)]
struct Insns {
    packed_float: usize,   // mulps addps subps andps orps maxps minps ...
    scalar_float: usize,   // mulss addss subss maxss minss ucomiss ...
    scalar_minmax: usize,  // maxss minss (also counted in scalar_float)
    packed_convert: usize, // cvttps2dq cvtps2dq cvtdq2ps packssdw
    scalar_convert: usize, // cvttss2si cvtss2si cvtsi2ss
    calls: usize,
}

/// Disassembles this executable once (None when objdump is missing or fails).
fn disassembly() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("objdump").args(["-d", "--no-show-raw-insn", "-C"]).arg(exe).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Counts the instructions of the function whose demangled name ends with `name`.
fn count_insns(dis: &str, name: &str) -> Option<Insns> {
    let label = format!("{name}>:");
    let start = dis.lines().position(|l| l.ends_with(&label))?;
    let mut n = Insns::default();
    for line in dis.lines().skip(start + 1).take_while(|l| !l.trim().is_empty()) {
        let Some(op) = line.split('\t').nth(1).and_then(|i| i.split_whitespace().next()) else { continue };
        match op {
            "cvttps2dq" | "cvtps2dq" | "cvtdq2ps" | "packssdw" => n.packed_convert += 1,
            "cvttss2si" | "cvtss2si" | "cvtsi2ss" => n.scalar_convert += 1,
            "call" => n.calls += 1,
            "movss" => {}
            "maxss" | "minss" => {
                n.scalar_minmax += 1;
                n.scalar_float += 1;
            }
            _ if op.ends_with("ss") && !op.starts_with("mov") => n.scalar_float += 1,
            _ if op.ends_with("ps")
                && !op.starts_with("mov")
                && !op.starts_with("unpck")
                && !op.starts_with("shuf") =>
            {
                n.packed_float += 1
            }
            _ => {}
        }
    }
    Some(n)
}

fn describe(name: &str, n: &Insns) -> String {
    format!(
        "{name}: {} packed / {} scalar float ops, {} packed / {} scalar conversions, {} calls",
        n.packed_float, n.scalar_float, n.packed_convert, n.scalar_convert, n.calls
    )
}

/// Max |method(x) - sin(x)| where each method gets one f32 rounding of the same f64 phase and
/// is compared with the f64 sine of exactly that f32 value.
fn sine_errors(step: f64) -> (f64, f64, f64) {
    let (mut e_libm, mut e_poly, mut phase_off) = (0.0f64, 0.0f64, 0.0f64);
    let step32 = step as f32;
    for i in 0..FRAMES {
        let cycles = (0.1 + step * i as f64).fract(); // exact enough: f64 over 4800 steps
        let wrapped = cycles - (cycles + 0.5).floor(); // [-0.5, 0.5)
        let x32 = wrapped as f32; // cycles, for the polynomial
        let y32 = (TAU * wrapped) as f32; // radians, for sinf
        e_poly = e_poly.max((sin_cycles(x32) as f64 - (TAU * x32 as f64).sin()).abs());
        e_libm = e_libm.max((y32.sin() as f64 - (y32 as f64).sin()).abs());
        // What keeping the phase in f32 (as the sine loops above do) adds on its own.
        let kept32 = (0.1f32 + step32 * i as f32) as f64;
        phase_off = phase_off.max(TAU * (kept32 - (0.1 + step * i as f64)).abs());
    }
    (e_libm, e_poly, phase_off)
}

/// Max error of the course's Taylor sine over `n` f32 points of [lo, hi], and where.
fn taylor_error(lo: f64, hi: f64, n: usize) -> (f64, f64) {
    (0..=n)
        .map(|k| {
            let y = (lo + (hi - lo) * k as f64 / n as f64) as f32;
            ((taylor5(y) as f64 - (y as f64).sin()).abs(), y as f64)
        })
        .fold((0.0, 0.0), |best, e| if e.0 > best.0 { e } else { best })
}

fn main() {
    header("L8.2", "scalar vs SIMD sine and sample conversion");
    let samples = pick(5_000, 500);
    let step64 = 440.0 / 48_000.0;
    let step = step64 as f32;
    let (mut a, mut b, mut c) = (vec![0.0f32; FRAMES], vec![0.0f32; FRAMES], vec![0.0f32; FRAMES]);
    sine_libm(&mut a, 0.1, step);
    sine_poly(&mut b, 0.1, step);
    sine_poly_scalar(&mut c, 0.1, step);
    let (e_libm, e_poly, phase_off) = sine_errors(step64);
    println!(
        "phase kept in f32 (0.1 + step*i, step rounded to f32) strays up to {phase_off:.1e} rad from the f64 phase over {FRAMES} samples; the errors below exclude it"
    );
    println!("max error vs f64 sin of the same f32 phase: libm sinf {e_libm:.1e}, 9th-order polynomial {e_poly:.1e}");
    let t_libm = time_ns(samples, 1, || sine_libm(black_box(&mut a), 0.1, step));
    let t_poly_s = time_ns(samples, 1, || sine_poly_scalar(black_box(&mut c), 0.1, step));
    let t_poly = time_ns(samples, 1, || sine_poly(black_box(&mut b), 0.1, step));
    let d_libm = report("sine, libm sinf", &t_libm, "ns");
    let d_poly_s = report("sine, polynomial, black_box index", &t_poly_s, "ns");
    let d_poly = report("sine, polynomial, plain loop", &t_poly, "ns");

    let left: Vec<f32> = (0..FRAMES).map(|i| (i as f32 * 0.013).sin() * 1.2).collect();
    let right: Vec<f32> = left.iter().map(|s| -s * 0.7).collect();
    assert!(left.iter().chain(&right).all(|s| s.is_finite()), "convert_clamp_first needs finite input");
    let (mut o1, mut o2, mut o5) = (vec![0i16; 2 * FRAMES], vec![0i16; 2 * FRAMES], vec![0i16; 2 * FRAMES]);
    let t_cs = time_ns(samples, 1, || convert_scalar(black_box(&left), black_box(&right), black_box(&mut o1)));
    let t_cv = time_ns(samples, 1, || interleave_i16(black_box(&left), black_box(&right), black_box(&mut o2)));
    let t_cf = time_ns(samples, 1, || convert_clamp_first(black_box(&left), black_box(&right), black_box(&mut o5)));
    let d_cs = report("convert, scalar f32::round", &t_cs, "ns");
    let d_cv = report("convert, platform interleave_i16", &t_cv, "ns");
    let d_cf = report("convert, clamp in float first", &t_cf, "ns");
    let differ = |o: &[i16]| o2.iter().zip(o).filter(|(x, y)| x != y).count();
    println!("samples differing from interleave_i16: scalar round {}, clamp first {}", differ(&o1), differ(&o5));
    #[cfg(target_arch = "x86_64")]
    let d_sse = {
        let mut o3 = vec![0i16; 2 * FRAMES];
        let t = time_ns(samples, 1, || convert_sse2(black_box(&left), black_box(&right), black_box(&mut o3)));
        let d = report("convert, explicit SSE2", &t, "ns");
        println!(
            "SSE2 vs interleave_i16: {} samples differ (cvtps2dq rounds halves to even, to_i16 away from zero)",
            differ(&o3)
        );
        Some(d)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let d_sse: Option<Dist> = None;

    let sse_text = d_sse.map_or(String::new(), |d| format!(", explicit SSE2 {:.1}x", d_cv.p50 / d.p50));
    verdict(
        "SIMD computes 4 samples per instruction, so about 4x faster",
        &format!(
            "p50 sine: plain-loop polynomial {:.1}x the black_box one, {:.1}x libm; conversion, relative to interleave_i16: scalar f32::round {:.2}x, clamp in float first {:.1}x{sse_text}",
            d_poly_s.p50 / d_poly.p50,
            d_libm.p50 / d_poly.p50,
            d_cv.p50 / d_cs.p50,
            d_cv.p50 / d_cf.p50,
        ),
        &vectorisation_why(&d_cv, &d_cf, d_sse.as_ref()),
    );
    taylor_lesson(e_poly);
    percentile_plot(
        "l8_2_simd_timings",
        &[
            ("libm sinf", &t_libm),
            ("poly black_box", &t_poly_s),
            ("poly plain loop", &t_poly),
            ("interleave_i16", &t_cv),
            ("clamp first", &t_cf),
        ],
        "ns per 4800-frame buffer",
    );
}

/// The "why" of the speed-ups, from this executable's own disassembly: only what it shows.
fn vectorisation_why(d_cv: &Dist, d_cf: &Dist, d_sse: Option<&Dist>) -> String {
    let Some(dis) = disassembly() else {
        return "objdump was not available, so this run did not check which loops vectorised; the ratios are all it shows".into();
    };
    let names = [
        ("interleave_i16", "handmade::audio::convert::interleave_i16"),
        ("clamp first", "l8_2_simd::convert_clamp_first"),
        ("SSE2", "l8_2_simd::convert_sse2"),
        ("sine plain loop", "l8_2_simd::sine_poly"),
    ];
    let counts: Vec<Option<Insns>> = names.iter().map(|(_, sym)| count_insns(&dis, sym)).collect();
    for ((label, _), n) in names.iter().zip(&counts) {
        match n {
            Some(n) => println!("disassembly: {}", describe(label, n)),
            None => println!("disassembly: {label}: symbol not found"),
        }
    }
    let mut why = Vec::new();
    if let Some(n) = &counts[0] {
        why.push(if n.packed_convert == 0 && n.scalar_convert == 0 {
            format!("the disassembly shows no conversion instruction in interleave_i16 itself ({} calls out), so this check says nothing about how it converts", n.calls)
        } else if n.packed_convert == 0 {
            format!("the disassembly shows interleave_i16 with no packed conversion: each sample goes through scalar cvttss2si ({} in the function) after scalar maxss/minss clamps ({}; the saturating `as i16`), although its multiply and rounding are packed ({} packed float ops)", n.scalar_convert, n.scalar_minmax, n.packed_float)
        } else {
            format!("the disassembly shows interleave_i16 with {} packed conversions, so its conversion is vectorised", n.packed_convert)
        });
    }
    if let Some(n) = &counts[1] {
        why.push(format!(
            "clamping in float first gives {} packed / {} scalar conversions and ran at {:.1}x interleave_i16's speed with the same output",
            n.packed_convert,
            n.scalar_convert,
            d_cv.p50 / d_cf.p50
        ));
    }
    if let (Some(n), Some(d)) = (&counts[2], d_sse) {
        why.push(format!(
            "the SSE2 path has {} packed / {} scalar conversions and ran at {:.1}x its speed",
            n.packed_convert,
            n.scalar_convert,
            d_cv.p50 / d.p50
        ));
    }
    if let Some(n) = &counts[3] {
        let state = match (n.packed_float, n.scalar_convert + n.scalar_float) {
            (0, _) => "not vectorised",
            (_, 0) => "vectorised",
            _ => "partly vectorised (packed and scalar float ops both present)",
        };
        why.push(format!("the plain-loop sine is {state}"));
    }
    let joined = why.join("; ");
    if cfg!(debug_assertions) {
        format!("this build is not optimised (debug assertions on), so these are not the optimised loops: {joined}")
    } else {
        joined
    }
}

/// The course's 5th-order Taylor sine: on [-pi, pi], on [-pi/2, pi/2], and unwrapped to 20 rad.
fn taylor_lesson(e_poly: f64) {
    use std::f64::consts::{FRAC_PI_2, PI};
    let n = pick(200_000, 20_000);
    let (e_pi, at_pi) = taylor_error(-PI, PI, n);
    let (e_half, _) = taylor_error(-FRAC_PI_2, FRAC_PI_2, n);
    let (e_20, at_20) = taylor_error(0.0, 20.0, n);
    verdict(
        "L8.2's Taylor sine (y - y^3/6 + y^5/120 of the phase) errs by under 0.1 %",
        &format!(
            "over {n} f32 points: max error {e_pi:.3} on [-pi, pi] (at y = {at_pi:+.4}), {e_half:.1e} on [-pi/2, pi/2], {e_20:.3e} on [0, 20] unwrapped (at y = {at_20:.2})"
        ),
        &format!(
            "the error measured here grows toward the ends of the interval: {e_pi:.3} at +-pi, {e_half:.1e} within +-pi/2 ({}); the 9th-order polynomial after folding to +-pi/2 (sin_cycles above) measured {e_poly:.1e}",
            if e_half > 1e-3 { "still above 0.1 %, so folding alone is not enough" } else { "within 0.1 % once the phase is folded" }
        ),
    );
    println!("note (Intel's intrinsics guide, not measured here): _mm_div_epi32, used by the course's SIMD code, is an SVML library routine, not an SSE2 or any x86 instruction: there is no packed integer divide");
    Plot::new()
        .series((0..1000).map(|k| {
            let y = k as f64 * 0.02;
            (y, (taylor5(y as f32) as f64).clamp(-2.0, 2.0))
        }))
        .series((0..1000).map(|k| (k as f64 * 0.02, (k as f64 * 0.02).sin())))
        .save("l8_2_simd", "x: phase in radians 0..20, y: value clamped to +-2; red: the course's 5th-order Taylor sine unwrapped, blue: sin");
}
