//! Lesson L9.1, the mixer: summing voices in i16 wraps around (a loud, harsh click), while
//! accumulating in i32 or f32 and clamping once at the end saturates. Three voices at 20000 must
//! clamp to 32767, not wrap to -5536. Clamping after each voice instead of once at the end makes
//! the result depend on the order the voices are added in.
//!
//! Run with: cargo run --release --example l9_1_mixer

mod common;

use std::f64::consts::TAU;
use std::hint::black_box;

use common::*;

fn mix_wrapping_i16(voices: &[&[i16]], out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = voices.iter().fold(0i16, |acc, v| acc.wrapping_add(v[i]));
    }
}

fn mix_i32_clamped(voices: &[&[i16]], out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate() {
        let sum: i32 = voices.iter().map(|v| i32::from(v[i])).sum();
        *o = sum.clamp(i16::MIN.into(), i16::MAX.into()) as i16;
    }
}

/// Clamps after adding each voice (i16 saturating adds), the course's per-voice clamp.
fn mix_clamp_each(voices: &[&[i16]], out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = voices.iter().fold(0i16, |acc, v| acc.saturating_add(v[i]));
    }
}

/// All orderings of three items.
const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

fn clamp_order_lesson(vi: &[Vec<i16>]) {
    let voices = [30_000i16, 30_000, -30_000];
    let mut each: Vec<(String, i16)> = Vec::new();
    let mut wide: Vec<i32> = Vec::new();
    for order in ORDERS {
        let seq: Vec<i16> = order.iter().map(|&k| voices[k]).collect();
        each.push((
            format!("{:+} {:+} {:+}", seq[0], seq[1], seq[2]),
            seq.iter().fold(0i16, |a, &v| a.saturating_add(v)),
        ));
        wide.push(seq.iter().map(|&v| i32::from(v)).sum::<i32>().clamp(-32768, 32767));
    }
    let mut distinct: Vec<i16> = each.iter().map(|e| e.1).collect();
    distinct.sort_unstable();
    distinct.dedup();
    wide.dedup();
    let mut shown: Vec<&str> = Vec::new();
    for (label, v) in &each {
        if !shown.contains(&label.as_str()) {
            println!("clamp after each voice: {label} -> {v}");
            shown.push(label);
        }
    }
    // The chord: per-voice clamping in each of the six orders, against one wide sum.
    let frames = vi[0].len();
    let mut reference = vec![0i16; frames];
    mix_i32_clamped(&vi.iter().map(|v| v.as_slice()).collect::<Vec<_>>(), &mut reference);
    let mut differ_max = 0;
    let mut out = vec![0i16; frames];
    for order in ORDERS {
        let refs: Vec<&[i16]> = order.iter().map(|&k| vi[k].as_slice()).collect();
        mix_clamp_each(&refs, &mut out);
        differ_max = differ_max.max(out.iter().zip(&reference).filter(|(a, b)| a != b).count());
    }
    verdict(
        "L9.1's mixer clamps the running sum after adding each voice",
        &format!(
            "+30000 +30000 -30000 in the six orders, clamped after each voice: {} distinct results {:?}; summed in i32 and clamped once: {:?}; the three-voice chord clamped per voice differs from the wide sum in up to {differ_max} of {frames} samples depending on order",
            distinct.len(),
            distinct,
            wide
        ),
        &format!(
            "checked over all six orders: clamping each partial sum throws away what a later voice would have cancelled, so the result depends on the order ({} different values); summing wide and clamping once gave {} value(s)",
            distinct.len(),
            wide.len()
        ),
    );
}

fn mix_f32_clamped(voices: &[&[f32]], out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate() {
        let sum: f32 = voices.iter().map(|v| v[i]).sum();
        *o = (sum.clamp(-1.0, 1.0) * 32767.0).round() as i16;
    }
}

fn main() {
    header("L9.1", "mixing voices: wrap vs clamp");
    let three = [20_000i16; 3];
    let wrapped = three.iter().fold(0i16, |a, &v| a.wrapping_add(v));
    let clamped = three.iter().map(|&v| i32::from(v)).sum::<i32>().clamp(-32768, 32767);
    println!("3 x 20000: i16 wrapping sum = {wrapped}, i32 sum = 60000 clamped = {clamped}");
    verdict(
        "3 x 20000 must clamp to 32767, not wrap",
        &format!("i16 wrap gives {wrapped}; i32 accumulate + clamp gives {clamped}"),
        &format!(
            "computed here: 60000 does not fit in i16 (max {}), and two's complement wraps it to 60000 - 65536 = {}",
            i16::MAX,
            60_000 - 65_536
        ),
    );

    // Three sines at amplitude 20000 (different pitches), mixed three ways.
    let frames = pick(48_000, 4_800);
    let voice = |hz: f64| -> Vec<f32> {
        (0..frames).map(|n| (TAU * hz * n as f64 / 48_000.0).sin() as f32 * (20_000.0 / 32767.0)).collect()
    };
    let vf: Vec<Vec<f32>> = [220.0, 277.18, 329.63].into_iter().map(voice).collect();
    let vi: Vec<Vec<i16>> = vf.iter().map(|v| v.iter().map(|&s| (s * 32767.0).round() as i16).collect()).collect();
    let vi_refs: Vec<&[i16]> = vi.iter().map(|v| v.as_slice()).collect();
    let vf_refs: Vec<&[f32]> = vf.iter().map(|v| v.as_slice()).collect();
    let (mut out_wrap, mut out_i32, mut out_f32) = (vec![0i16; frames], vec![0i16; frames], vec![0i16; frames]);
    mix_wrapping_i16(&vi_refs, &mut out_wrap);
    mix_i32_clamped(&vi_refs, &mut out_i32);
    mix_f32_clamped(&vf_refs, &mut out_f32);
    let jumps = |s: &[i16]| s.windows(2).filter(|w| (i32::from(w[1]) - i32::from(w[0])).abs() > 20_000).count();
    let clipped = out_i32.iter().filter(|&&s| s == i16::MAX || s == i16::MIN).count();
    let differ = out_wrap.iter().zip(&out_i32).filter(|(a, b)| a != b).count();
    println!("three-voice chord, {frames} frames: wrapped samples={differ} clipped samples={clipped}");
    println!(
        "full-scale jumps (>20000 between neighbours): wrap={} i32+clamp={} f32+clamp={}",
        jumps(&out_wrap),
        jumps(&out_i32),
        jumps(&out_f32)
    );
    clamp_order_lesson(&vi);
    let samples = pick(2_000, 200);
    let t_wrap = time_ns(samples, 1, || mix_wrapping_i16(black_box(&vi_refs[..]), black_box(&mut out_wrap[..800])));
    let t_i32 = time_ns(samples, 1, || mix_i32_clamped(black_box(&vi_refs[..]), black_box(&mut out_i32[..800])));
    let t_f32 = time_ns(samples, 1, || mix_f32_clamped(black_box(&vf_refs[..]), black_box(&mut out_f32[..800])));
    let (a, b, c) = (
        report("mix 3 voices x 800, i16 wrap", &t_wrap, "ns"),
        report("mix 3 voices x 800, i32 clamp", &t_i32, "ns"),
        report("mix 3 voices x 800, f32 clamp", &t_f32, "ns"),
    );
    verdict(
        "clamping costs something over wrapping",
        &format!("p50 wrap {:.0} ns, i32+clamp {:.0} ns, f32+clamp {:.0} ns per 800-frame block", a.p50, b.p50, c.p50),
        &format!(
            "the slowest takes {:.3}% of the 16.7 ms the block stands for; the wrapping mix made {} full-scale jumps in the chord, the clamped ones {} and {}",
            a.p50.max(b.p50).max(c.p50) / 16_666_667.0 * 100.0,
            jumps(&out_wrap),
            jumps(&out_i32),
            jumps(&out_f32)
        ),
    );
    let window = 0..600;
    Plot::new()
        .series(window.clone().map(|i| (i as f64, out_wrap[i] as f64)))
        .series(window.clone().map(|i| (i as f64, out_i32[i] as f64)))
        .save("l9_1_mixer", "x: sample, y: i16 value; red: i16 wrapping sum, blue: i32 sum clamped");
}
