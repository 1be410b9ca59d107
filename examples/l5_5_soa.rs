//! Lesson L5.5 Exercise 3, AoS vs SoA: the course's loop (write `left` of 1000 channels stored
//! as structs vs as separate arrays) and a stereo mix, timed as distributions, beside a variant
//! the compiler cannot vectorise, the L1 data cache size (sysfs) and the vector instructions in
//! each loop (objdump). The "why" is chosen from those results; a debug build
//! (`cargo run --example l5_5_soa`) says it is unoptimised.
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
        "data: AoS {} bytes, SoA left {} bytes; L1 data cache (sysfs): {}",
        CHANNELS * std::mem::size_of::<ChannelAos>(),
        CHANNELS * 2,
        l1_data_cache_bytes().map_or("not readable".to_string(), |b| format!("{} KiB", b / 1024))
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
    let data_bytes = CHANNELS * std::mem::size_of::<ChannelAos>();
    let checks = Checks {
        l1_bytes: l1_data_cache_bytes(),
        vector_soa: vector_instructions("l5_5_soa::write_soa"),
        vector_aos: vector_instructions("l5_5_soa::write_aos"),
    };
    verdict(
        "AoS is 2.67x slower than SoA due to better cache utilisation",
        &format!(
            "{build}: AoS/SoA p50 {:.2}x vectorisable, {:.2}x when not vectorised; stereo mix AoS/SoA {:.2}x",
            a.p50 / s.p50,
            a2.p50 / s2.p50,
            ma.p50 / ms.p50
        ),
        &soa_why(a.p50 / s.p50, a2.p50 / s2.p50, data_bytes, &checks),
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

/// What the program checked beside the timings.
struct Checks {
    l1_bytes: Option<usize>,
    vector_soa: Option<usize>,
    vector_aos: Option<usize>,
}

/// The L1 data cache of CPU 0, from sysfs (None when not readable).
fn l1_data_cache_bytes() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    (0..4).find_map(|i| {
        let read = |f: &str| std::fs::read_to_string(dir.join(format!("index{i}/{f}"))).ok();
        (read("level")?.trim() == "1" && read("type")?.trim() == "Data").then_some(())?;
        let size = read("size")?;
        let kib: usize = size.trim().trim_end_matches('K').parse().ok()?;
        Some(kib * 1024)
    })
}

/// Instructions using an xmm/ymm register in one function of this executable (objdump).
fn vector_instructions(symbol: &str) -> Option<usize> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("objdump").args(["-d", "--no-show-raw-insn", "-C"]).arg(exe).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let label = format!("<{symbol}>:");
    let start = text.lines().position(|l| l.ends_with(&label))?;
    let body = text.lines().skip(start + 1).take_while(|l| !l.trim().is_empty());
    Some(body.filter(|l| l.contains("%xmm") || l.contains("%ymm")).count())
}

/// The "why", chosen from this run's ratios and checks.
fn soa_why(vectorisable: f64, scalar: f64, data_bytes: usize, c: &Checks) -> String {
    let count = |n: Option<usize>| n.map_or("?".to_string(), |n| n.to_string());
    let simd =
        format!("vector (xmm/ymm) instructions in the loops: SoA {}, AoS {}", count(c.vector_soa), count(c.vector_aos));
    let fits = match c.l1_bytes {
        Some(l1) if data_bytes <= l1 => {
            format!("the {data_bytes} bytes fit the {} KiB L1 data cache (sysfs)", l1 / 1024)
        }
        Some(l1) => format!("the {data_bytes} bytes exceed the {} KiB L1 data cache (sysfs)", l1 / 1024),
        None => format!("the L1 size was not readable ({data_bytes} bytes of data)"),
    };
    if cfg!(debug_assertions) {
        return format!(
            "this build is not optimised (debug assertions on): {simd}; AoS/SoA came out {vectorisable:.2}x, and {fits}; run with --release for the optimised figures"
        );
    }
    if vectorisable <= 1.0 {
        return format!("AoS was not slower here ({vectorisable:.2}x); {simd}; {fits}");
    }
    let vectorised_soa = c.vector_soa.is_some_and(|n| n > 0);
    if scalar < vectorisable / 1.5 && vectorised_soa && c.l1_bytes.is_some_and(|l1| data_bytes <= l1) {
        format!(
            "{fits}, and the gap falls from {vectorisable:.2}x to {scalar:.2}x when the loop cannot vectorise ({simd}): in this run the difference is vectorisation, not the cache"
        )
    } else {
        format!(
            "SoA was {vectorisable:.2}x faster vectorisable and {scalar:.2}x not vectorised; {simd}; {fits}: this run does not separate vectorisation from layout"
        )
    }
}
