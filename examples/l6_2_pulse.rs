//! Lesson L6.2, the PulseAudio port: the native simple API (`pa_simple`, through the
//! libpulse-simple-binding crate) asked for a target buffer (tlength) of 1 s and of 20 ms, with
//! `pa_simple_get_latency` read after each write once the buffer is full (p50/p99/max), and the
//! time to connect a stream against opening and configuring ALSA's `default` (p50/p99/max).
//! The course reports 70 against 33 ms and 200 against 50 ms of init, with tlength = 1 s.
//!
//! Run with: cargo run --release --example l6_2_pulse

mod common;

use std::time::Instant;

use common::*;
use libpulse_binding::def::BufferAttr;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::Direction;
use libpulse_simple_binding::Simple;

const RATE: u32 = 48_000;

fn connect(tlength_ms: u32) -> Result<Simple, String> {
    let spec = Spec { format: Format::S16le, rate: RATE, channels: 2 };
    let attr = BufferAttr {
        maxlength: u32::MAX,
        tlength: tlength_ms * RATE / 1000 * 4,
        prebuf: u32::MAX,
        minreq: u32::MAX,
        fragsize: u32::MAX,
    };
    Simple::new(None, "handmade-l6_2", Direction::Playback, None, "lesson", &spec, None, Some(&attr))
        .map_err(|e| e.to_string().unwrap_or_else(|| format!("{e:?}")))
}

/// Writes 10 ms chunks for `tlength` plus `measure_ms`; returns get_latency (ms) after each
/// write past the first `tlength` of audio.
fn latency_ms(s: &Simple, tlength_ms: u32, measure_ms: u32) -> Vec<f64> {
    let mut tone = Tone::new(RATE);
    let mut chunk = vec![0i16; 2 * (RATE as usize / 100)];
    let mut out = Vec::new();
    for n in 0..(tlength_ms + measure_ms) / 10 {
        let samples = tone.fill(&mut chunk);
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        s.write(&bytes).expect("pa_simple_write");
        if n * 10 >= tlength_ms {
            out.push(s.get_latency().map_or(f64::NAN, |us| us.0 as f64 / 1e3));
        }
    }
    out.retain(|v| v.is_finite());
    out
}

fn main() {
    header("L6.2", "the native PulseAudio simple API: latency by tlength, and init time against ALSA");
    let first = connect(20).unwrap_or_else(|e| {
        eprintln!("no device: no PulseAudio server answered ({e}); nothing measured (tests run this under .ci/pulse-null-sink.sh)");
        std::process::exit(1);
    });
    drop(first);
    let measure_ms = pick(2000, 600);
    let mut lat = Vec::new();
    for tlength in [1000u32, 20] {
        let s = connect(tlength).unwrap_or_else(|e| {
            eprintln!("pa_simple_new failed at tlength {tlength} ms: {e}");
            std::process::exit(1);
        });
        let l = latency_ms(&s, tlength, measure_ms);
        let _ = s.flush();
        let d = report(&format!("pa_simple latency, tlength {tlength} ms"), &l, "ms");
        lat.push((tlength, d, l));
    }

    let runs = pick(40, 10);
    let (mut pa_init, mut alsa_init) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let s = connect(20).expect("pa_simple_new");
        pa_init.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
        let t = Instant::now();
        let pcm = open_or_exit("default", RATE, 20_000, None);
        alsa_init.push(t.elapsed().as_secs_f64() * 1e3);
        drop(pcm);
    }
    let p = report("pa_simple_new", &pa_init, "ms");
    let a = report("ALSA default open + hw/sw params", &alsa_init, "ms");
    let (long, short) = (lat[0].1, lat[1].1);
    verdict(
        "with tlength = 1 s, pa_simple latency is 70 ms (ALSA 33 ms)",
        &format!("get_latency p50 {:.1} ms (p99 {:.1}, max {:.1}) at tlength 1 s; p50 {:.1} ms (p99 {:.1}, max {:.1}) at tlength 20 ms", long.p50, long.p99, long.max, short.p50, short.p99, short.max),
        &format!(
            "tlength is the amount the server keeps queued for the stream: with a blocking writer that keeps it full, the latency followed it ({:.0} ms at 1 s, {:.0} ms at 20 ms in this run)",
            long.p50, short.p50
        ),
    );
    verdict(
        "pa_simple init takes 200 ms, ALSA 50 ms",
        &format!("pa_simple_new p50 {:.2} ms (p99 {:.2}, max {:.2}); ALSA `default` open+configure p50 {:.2} ms (p99 {:.2}, max {:.2}); {runs} each", p.p50, p.p99, p.max, a.p50, a.p99, a.max),
        &format!(
            "both timed {runs} times here, alternating, against the same server: the p50s differ by {:.2} ms, and neither is near the claimed 200 or 50 ms",
            (a.p50 - p.p50).abs()
        ),
    );
    let refs: Vec<(String, Vec<f64>)> = lat.iter().map(|(t, _, l)| (format!("tlength {t} ms"), l.clone())).collect();
    let series: Vec<(&str, &[f64])> = refs.iter().map(|(n, l)| (n.as_str(), l.as_slice())).collect();
    percentile_plot("l6_2_pulse", &series, "ms of latency (pa_simple_get_latency)");
}
