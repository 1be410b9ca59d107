//! Audio report (issue 3): the cost of converting one frame of sound (SoA f32 to interleaved
//! S16), the latency achieved through ALSA and SDL2 against the one requested (from the
//! device's delay), and the lowest `--latency-ms` that runs with zero underruns through a
//! private PulseAudio null sink. Re-runs itself under .ci/pulse-null-sink.sh.
//! `AUDIO_REPORT_SECONDS` shortens each sweep run (default 60).
//! Run with: cargo run --release --example audio_report

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use handmade::interleave_i16;
use handmade::{Args, Config};

fn main() {
    if std::env::var_os("PULSE_TMP").is_none() {
        reexec_under_null_sink();
        return;
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp(None).init();
    conversion_cost();
    achieved_latency();
    lowest_latency();
}

fn reexec_under_null_sink() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/pulse-null-sink.sh");
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new(script)
        .args(["run", "--"])
        .arg(exe)
        .status()
        .expect("run .ci/pulse-null-sink.sh (is pulseaudio installed? .ci/setup.sh)");
    std::process::exit(status.code().unwrap_or(1));
}

fn conversion_cost() {
    const FRAMES: usize = 800;
    let left: Vec<f32> = (0..FRAMES).map(|i| (i as f32 * 0.03).sin() * 0.25).collect();
    let right = left.clone();
    let mut out = vec![0i16; 2 * FRAMES];
    let mut times = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let start = Instant::now();
        interleave_i16(std::hint::black_box(&left), std::hint::black_box(&right), &mut out);
        std::hint::black_box(&out);
        times.push(start.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "conversion, {FRAMES} frames SoA f32 -> interleaved S16: p50 {} ns, p99 {} ns ({:.2} ns/frame at p50)",
        pct(0.50),
        pct(0.99),
        pct(0.50) as f64 / FRAMES as f64
    );
}

/// Runs the platform headless for `seconds` and returns its counters.
fn run(backend: &str, latency_ms: f32, seconds: u64) -> handmade::RunReport {
    let frames = (seconds * 60).to_string();
    let latency = latency_ms.to_string();
    let args = Args::parse_from([
        "handmade",
        "--headless",
        "--no-rebuild",
        "--audio",
        backend,
        "--latency-ms",
        &latency,
        "--frames",
        &frames,
    ]);
    let config = Config::from_args(&args).unwrap_or_else(|e| panic!("{backend} at {latency_ms} ms: {e}"));
    handmade::run(&config).unwrap_or_else(|e| panic!("{backend} at {latency_ms} ms: {e}"))
}

fn achieved_latency() {
    println!("achieved latency (mean device delay at write time), 5 s runs:");
    for backend in ["alsa", "sdl"] {
        for requested in [33.3f32, 20.0, 10.0] {
            let report = run(backend, requested, 5);
            let c = &report.counters;
            println!(
                "  {backend:4} requested {requested:5.1} ms -> achieved {:.2} ms, underruns {}, frame_ms_p99 {}, sound_heap_allocs {}, heap_allocs_after_warmup {}, other threads {}",
                c.latency_ms,
                c.underruns,
                handmade_support::stat(&report.stats_line, "frame_ms_p99"),
                c.sound_heap_allocs,
                c.heap_allocs_after_warmup,
                c.heap_allocs_other_threads,
            );
        }
    }
}

fn lowest_latency() {
    let seconds: u64 = std::env::var("AUDIO_REPORT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    for backend in ["alsa", "sdl"] {
        let mut lowest = None;
        for latency in [20.0f32, 15.0, 10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0] {
            let c = run(backend, latency, seconds).counters;
            let underruns = c.underruns;
            println!(
                "  sweep {backend:4} {latency:4.1} ms for {seconds} s: underruns {underruns}, achieved {:.2} ms",
                c.latency_ms
            );
            if underruns != 0 {
                break;
            }
            lowest = Some(latency);
        }
        match lowest {
            Some(ms) => {
                println!("lowest zero-underrun --latency-ms through the null sink ({backend}, {seconds} s): {ms} ms")
            }
            None => println!("{backend}: underruns even at 20 ms"),
        }
    }
}
