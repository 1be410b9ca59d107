//! Lesson U1 (dynamic loading), hot reload with a tone playing: the real platform reloads the
//! game library every 60 frames (copy, dlopen, check, swap) while the demo plays its 256 Hz
//! tone into a WAV file; the file is then compared sample by sample with the ideal tone at the
//! running sample index, so any reset, gap or click at a reload frame would show.
//!
//! Run with: cargo run --release --example l1_hot_reload

mod common;

use std::f64::consts::TAU;

use common::*;

const RATE: f64 = 48_000.0;
const HZ: f64 = 256.0;
const AMPLITUDE: f64 = 0.25;
const FRAME: usize = 800; // 48 kHz / 60 fps
const RELOAD_EVERY: usize = 60;

fn ideal(n: usize) -> i32 {
    ((AMPLITUDE * (TAU * (HZ * n as f64 / RATE).fract()).sin()) * 32767.0).round() as i32
}

fn main() {
    header("U1", "hot reload while a tone plays: does the running sample index continue?");
    let frames = pick(600, 240);
    let wav = lessons_dir().join("l1_hot_reload.wav");
    let (n, every) = (frames.to_string(), RELOAD_EVERY.to_string());
    let stats = run_in_process(&[
        "--headless",
        "--audio",
        "wav",
        "--wav-out",
        wav.to_str().expect("utf-8 path"),
        "--frames",
        &n,
        "--reload-every",
        &every,
        "--stats",
        "--no-rebuild",
    ]);
    println!(
        "platform: frames={} reloads={} reload_failures={} reload_ms_p50={} reload_ms_max={}",
        stat(&stats, "frames"),
        stat(&stats, "reloads"),
        stat(&stats, "reload_failures"),
        stat(&stats, "reload_ms_p50"),
        stat(&stats, "reload_ms_max")
    );

    let left: Vec<i32> =
        Wav::open(&wav).expect("the platform wrote the WAV").channel(0).into_iter().map(i32::from).collect();
    let deviation = |range: std::ops::Range<usize>| range.map(|i| (left[i] - ideal(i)).abs()).max().unwrap_or(0);
    let boundaries: Vec<usize> = (1..).map(|k| k * RELOAD_EVERY * FRAME).take_while(|&b| b < left.len()).collect();
    let overall = deviation(0..left.len());
    let at_reloads =
        boundaries.iter().map(|&b| deviation(b.saturating_sub(FRAME)..(b + FRAME).min(left.len()))).max().unwrap_or(0);
    let max_step = left.windows(2).map(|w| (w[1] - w[0]).abs()).max().unwrap_or(0);
    let ideal_step = (AMPLITUDE * TAU * HZ / RATE * 32767.0).ceil() as i32;
    println!(
        "{} samples per channel, {} reload boundaries at samples {:?}",
        left.len(),
        boundaries.len(),
        &boundaries[..boundaries.len().min(4)]
    );
    println!("max |wav - ideal(n)|: whole file {overall} LSB, within one frame of a reload {at_reloads} LSB");
    println!("largest sample-to-sample step {max_step} LSB (a {HZ} Hz sine at {AMPLITUDE} can step {ideal_step})");
    let continuous = overall <= 2 && max_step <= ideal_step + 2;
    verdict(
        "game state lives in permanent storage, so a reload continues the waveform sample-exactly",
        &format!(
            "{} reloads; every sample matches the ideal tone at its running index within {overall} LSB ({})",
            stat(&stats, "reloads"),
            if continuous { "continuous" } else { "NOT continuous" }
        ),
        if continuous {
            "checked on every sample written, across each reload boundary: the output matched the ideal tone at its running sample index, so the phase carried over each code swap"
        } else {
            "checked on every sample written: the output departs from the ideal tone; look near the reload boundaries for a reset of the phase"
        },
    );
    if let Some(&b) = boundaries.first() {
        let window = b - 300..(b + 300).min(left.len());
        Plot::new()
            .series(window.clone().map(|i| (i as f64, f64::from(left[i]))))
            .series(window.clone().map(|i| (i as f64, f64::from(ideal(i)) * 0.9)))
            .marker(b as f64)
            .save(
                "l1_hot_reload",
                "x: running sample index, y: i16; red: WAV output, blue: ideal tone (scaled 0.9); dashed: reload",
            );
    }
}
