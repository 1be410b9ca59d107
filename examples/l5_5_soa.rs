//! Lesson L5.5 Exercise 3, AoS vs SoA: the course's loop (write `left` of 1000 channels stored
//! as structs vs as separate arrays) and a stereo mix, timed as distributions. The gap is mostly
//! vectorisation: a variant the compiler cannot vectorise shows the layouts close together, and
//! a debug build (`cargo run --example l5_5_soa`) shows about the same ratio as that variant.
//!
//! Run with: cargo run --release --example l5_5_soa

mod common;

use std::hint::black_box;

use common::*;

const CHANNELS: usize = 1000;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct ChannelAos {
    left: i16,
    right: i16,
    pan: f32,
    volume: f32,
}

struct ChannelsSoa {
    left: Vec<i16>,
    _right: Vec<i16>,
    _pan: Vec<f32>,
    _volume: Vec<f32>,
}

#[inline(never)]
fn write_aos(c: &mut [ChannelAos]) {
    for (i, ch) in c.iter_mut().enumerate() {
        ch.left = (i * 2) as i16;
    }
}

#[inline(never)]
fn write_soa(c: &mut ChannelsSoa) {
    for (i, l) in c.left.iter_mut().enumerate() {
        *l = (i * 2) as i16;
    }
}

/// The same stores, each index laundered through `black_box` so the loop cannot be vectorised.
#[inline(never)]
fn write_aos_scalar(c: &mut [ChannelAos]) {
    for i in 0..c.len() {
        let i = black_box(i);
        c[i].left = (i * 2) as i16;
    }
}

#[inline(never)]
fn write_soa_scalar(c: &mut ChannelsSoa) {
    for i in 0..c.left.len() {
        let i = black_box(i);
        c.left[i] = (i * 2) as i16;
    }
}

/// A mixer-shaped loop: out += sample * gain over interleaved frames vs separate channels.
#[derive(Clone, Copy, Default)]
struct Frame {
    l: f32,
    r: f32,
}

#[inline(never)]
fn mix_aos(src: &[Frame], gain: f32, out: &mut [Frame]) {
    for (o, s) in out.iter_mut().zip(src) {
        o.l += s.l * gain;
        o.r += s.r * gain;
    }
}

#[inline(never)]
fn mix_soa(src: (&[f32], &[f32]), gain: f32, out: (&mut [f32], &mut [f32])) {
    for (o, s) in out.0.iter_mut().zip(src.0) {
        *o += s * gain;
    }
    for (o, s) in out.1.iter_mut().zip(src.1) {
        *o += s * gain;
    }
}

fn main() {
    header("L5.5 Ex3", "array of structures vs structure of arrays");
    let samples = pick(20_000, 2_000);
    let mut aos = vec![ChannelAos::default(); CHANNELS];
    let mut soa = ChannelsSoa {
        left: vec![0; CHANNELS],
        _right: vec![0; CHANNELS],
        _pan: vec![0.0; CHANNELS],
        _volume: vec![0.0; CHANNELS],
    };
    println!(
        "data: AoS {} bytes, SoA left {} bytes (both fit the 32+ KiB L1 data cache)",
        CHANNELS * std::mem::size_of::<ChannelAos>(),
        CHANNELS * 2
    );
    let t_aos = time_ns(samples, 10, || write_aos(black_box(&mut aos)));
    let t_soa = time_ns(samples, 10, || write_soa(black_box(&mut soa)));
    let t_aos_s = time_ns(samples, 10, || write_aos_scalar(black_box(&mut aos)));
    let t_soa_s = time_ns(samples, 10, || write_soa_scalar(black_box(&mut soa)));
    let a = report("course loop, AoS", &t_aos, "ns/pass");
    let s = report("course loop, SoA", &t_soa, "ns/pass");
    let a2 = report("course loop, AoS, not vectorised", &t_aos_s, "ns/pass");
    let s2 = report("course loop, SoA, not vectorised", &t_soa_s, "ns/pass");

    let frames = 800;
    let src_aos = vec![Frame { l: 0.25, r: -0.25 }; frames];
    let mut out_aos = vec![Frame::default(); frames];
    let (src_l, src_r) = (vec![0.25f32; frames], vec![-0.25f32; frames]);
    let (mut out_l, mut out_r) = (vec![0.0f32; frames], vec![0.0f32; frames]);
    let t_mix_aos = time_ns(samples, 10, || mix_aos(black_box(&src_aos), 0.5, black_box(&mut out_aos)));
    let t_mix_soa = time_ns(samples, 10, || {
        mix_soa((black_box(&src_l), black_box(&src_r)), 0.5, (black_box(&mut out_l), black_box(&mut out_r)))
    });
    let ma = report("stereo mix 800 frames, AoS", &t_mix_aos, "ns/pass");
    let ms = report("stereo mix 800 frames, SoA", &t_mix_soa, "ns/pass");

    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    verdict(
        "AoS is 2.67x slower than SoA due to better cache utilisation",
        &format!(
            "{build}: AoS/SoA p50 {:.2}x vectorisable, {:.2}x when not vectorised; stereo mix AoS/SoA {:.2}x",
            a.p50 / s.p50,
            a2.p50 / s2.p50,
            ma.p50 / ms.p50
        ),
        &format!(
            "everything sits in L1, so it is not the cache: SoA lets the compiler store 8 contiguous i16 per instruction, AoS needs one strided store each; without vectorisation the gap is {:.2}x, and in the mix, where both layouts are contiguous floats that vectorise, it is {:.2}x (a debug build vectorises nothing)",
            a2.p50 / s2.p50,
            ma.p50 / ms.p50
        ),
    );
    compare_with_debug_build();
    percentile_plot(
        "l5_5_soa",
        &[("AoS", &t_aos), ("SoA", &t_soa), ("AoS scalar", &t_aos_s), ("SoA scalar", &t_soa_s)],
        "ns per pass over 1000 channels",
    );
}

/// In a release run, runs the debug build of this lesson (if it was built) in quick mode and
/// prints its measurement, so both builds sit side by side.
fn compare_with_debug_build() {
    if cfg!(debug_assertions) || std::env::var_os("LESSON_SOA_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let debug = exe
        .ancestors()
        .nth(3) // <target>/release/examples/l5_5_soa -> <target>
        .map(|t| t.join("debug/examples/l5_5_soa"));
    match debug.filter(|p| p.exists()) {
        Some(path) => {
            let out = std::process::Command::new(&path).env("LESSON_QUICK", "1").env("LESSON_SOA_CHILD", "1").output();
            let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            let line = text.ok().and_then(|t| t.lines().find(|l| l.starts_with("measured: ")).map(str::to_string));
            match line {
                Some(line) => println!("debug build (quick): {}", line.trim_start_matches("measured: ")),
                None => println!("debug build: {} did not report a measurement", path.display()),
            }
        }
        None => println!("debug build: not built; `cargo build --example l5_5_soa` and rerun to compare both builds"),
    }
}
