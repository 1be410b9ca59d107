//! Lesson L2.6, latency: requested latency, then the buffer the device granted, then the delay
//! measured while playing (p50/p99/max of `snd_pcm_delay` just before each write), for the
//! real `default` device and the `plug:default` path, and the platform's SDL2 backend (its
//! mean queued audio). `audio_report` is the longer version (lowest zero-underrun latency).
//!
//! Run with: cargo run --release --example l2_6_latency

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Plays for `ms` on `device` with a buffer near `requested_ms`, one period per wake-up;
/// returns the granted sizes and the delay (ms) read before each write.
fn measure(device: &str, requested_ms: u32, ms: u64) -> (Granted, Vec<f64>, u32) {
    let (pcm, g) = open_or_exit(device, 48_000, requested_ms * 1000, None);
    let io = pcm.io_i16().expect("S16 I/O");
    let mut tone = Tone::new(g.rate);
    let mut chunk = vec![0i16; 2 * g.period as usize];
    let (mut delays, mut underruns) = (Vec::new(), 0);
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        if pcm.state() == alsa::pcm::State::Running {
            let _ = pcm.wait(Some(500));
            match pcm.delay() {
                Ok(d) => delays.push(g.ms(d)),
                Err(e) => underruns += u32::from(recover(&pcm, e) == libc::EPIPE),
            }
        }
        if let Err(e) = io.writei(tone.fill(&mut chunk)) {
            underruns += u32::from(recover(&pcm, e) == libc::EPIPE);
        }
    }
    let _ = pcm.drop();
    (g, delays, underruns)
}

fn main() {
    header("L2.6", "requested latency, granted buffer, measured delay");
    let run_ms = pick(2000, 500);
    println!(
        "{:<14} {:>8} {:>14} {:>8} {:>28} {:>9}",
        "path", "asked ms", "granted frames", "ms", "delay p50/p99/max ms", "underruns"
    );
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for device in ["default", "plug:default"] {
        for requested in [10u32, 25, 50] {
            let (g, delays, underruns) = measure(device, requested, run_ms);
            if delays.is_empty() {
                println!(
                    "{device:<14} {requested:>8} {:>14} {:>8.1} {:>28} {underruns:>9}",
                    g.buffer,
                    g.ms(g.buffer),
                    "never ran"
                );
                continue;
            }
            let d = dist(&delays);
            println!(
                "{device:<14} {requested:>8} {:>14} {:>8.1} {:>28} {underruns:>9}",
                g.buffer,
                g.ms(g.buffer),
                format!("{:.1}/{:.1}/{:.1}", d.p50, d.p99, d.max)
            );
            rows.push((device, requested, g, d));
            if device == "default" {
                series.push((requested, delays));
            }
        }
    }
    for (requested, delays) in &series {
        report(&format!("default, asked {requested} ms: delay"), delays, "ms");
    }
    // SDL2 through the real platform (it asks SDL for its buffer and paces on its own queue).
    let frames = pick(300, 60).to_string();
    let mut sdl = Vec::new();
    for requested in [10u32, 25, 50] {
        let latency = requested.to_string();
        let stats = run_in_process(&[
            "--headless",
            "--no-rebuild",
            "--audio",
            "sdl",
            "--latency-ms",
            &latency,
            "--frames",
            &frames,
        ]);
        let achieved: f64 = stat(&stats, "latency_ms").parse().expect("latency_ms");
        let underruns = stat(&stats, "underruns");
        println!(
            "{:<14} {requested:>8} {:>14} {:>8} {:>28} {underruns:>9}",
            "sdl2 (platform)",
            "-",
            "-",
            format!("mean {achieved:.1}")
        );
        sdl.push((requested, achieved));
    }
    let at = |dev: &str, r: u32| rows.iter().find(|x| x.0 == dev && x.1 == r);
    let granted: Vec<String> =
        [10u32, 25, 50].iter().filter_map(|&r| at("default", r).map(|x| format!("{r} ms -> {}", x.2.buffer))).collect();
    verdict(
        "requested 10/25/50 ms are granted 512/1200/2400 frames",
        &format!("`default` granted {}", granted.join(", ")),
        &format!(
            "read back with hw_params_current after hw_params: {} of 3 requests were granted to the frame (10 ms at 48 kHz is 480 frames); a grant of 512 is a device rounding to a power of two, which this one did not",
            [10u32, 25, 50].iter().filter(|&&r| at("default", r).is_some_and(|x| x.2.buffer == i64::from(r) * 48)).count()
        ),
    );
    let beyond: Vec<String> = rows
        .iter()
        .map(|(dev, r, g, d)| format!("{dev} {r} ms: delay p50 {:.1} ms vs buffer {:.1} ms", d.p50, g.ms(g.buffer)))
        .collect();
    verdict(
        "the latency is the buffer size (33 ms buffer, 33 ms latency)",
        &format!(
            "{}; SDL2 mean queued {}",
            beyond.join("; "),
            sdl.iter().map(|(r, a)| format!("{r} ms -> {a:.1} ms")).collect::<Vec<_>>().join(", ")
        ),
        &{
            let ratios: Vec<f64> = rows.iter().map(|(_, _, g, d)| d.p50 / g.ms(g.buffer)).collect();
            let (lo, hi) = ratios.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
            let sdl_ratio = sdl.iter().map(|(r, a)| a / f64::from(*r)).fold(0.0f64, f64::max);
            format!(
                "delay (how long a sample written now waits to be heard) before each write was {:.0}-{:.0}% of the granted buffer on the ALSA paths here: a loop that keeps the ring full hears about its whole buffer; the platform through SDL2 queued up to {sdl_ratio:.1}x what it asked, so the request alone does not give the latency",
                lo * 100.0,
                hi * 100.0
            )
        },
    );
    let plot_series: Vec<(String, Vec<f64>)> =
        series.iter().map(|(r, d)| (format!("asked {r} ms"), d.clone())).collect();
    let refs: Vec<(&str, &[f64])> = plot_series.iter().map(|(l, d)| (l.as_str(), d.as_slice())).collect();
    percentile_plot("l2_6_latency", &refs, "ms of delay on `default`");
}
