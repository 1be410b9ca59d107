//! Lesson L4.5, debug visualisation (Handmade Hero day 20): the real platform's audio-sync
//! markers. The platform binary runs headless on ALSA's `default` with `--sync-dump`, which
//! writes its newest markers (write cursor, frames written, frames queued before the write,
//! expected boundary). From them: the play cursor at each frame (write cursor − queued), the
//! error of predicting the next frame's play cursor one frame's worth of samples ahead
//! (p50/p99/max), and how stable the queue and the write sizes were.
//!
//! Run with: cargo run --release --example l4_5_markers

mod common;

use std::process::Command;

use common::*;

/// (write_cursor, frames_written, queued_frames, expected_frame_boundary) per frame.
fn read_markers(path: &std::path::Path) -> Vec<[i64; 4]> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("the platform wrote no sync dump ({e})");
        std::process::exit(1);
    });
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let v: Vec<i64> = l.split_whitespace().map(|x| x.parse().expect("a number in the sync dump")).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

fn main() {
    header("L4.5", "the platform's audio-sync markers: prediction error and stability");
    let frames = pick(600, 180);
    let dir = tempfile::tempdir().expect("temp dir");
    let dump = dir.path().join("sync.txt");
    let game = std::env::var("LESSON_GAME_LIB").map_or_else(|_| build_game_variant(""), std::path::PathBuf::from);
    let output = Command::new(platform_binary())
        .args(["--headless", "--audio", "alsa", "--frames", &frames.to_string(), "--stats", "--no-rebuild"])
        .arg("--game-lib")
        .arg(&game)
        .arg("--sync-dump")
        .arg(&dump)
        .env("RUST_LOG", "info") // the `audio:` line says which backend ran
        .output()
        .expect("run the platform");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.contains("audio: alsa") {
        let line = stderr.lines().find(|l| l.contains("alsa") || l.contains("audio")).unwrap_or("no audio line");
        eprintln!("no device: the platform did not play through ALSA `default` ({line}); nothing measured");
        std::process::exit(1);
    }
    let stats = String::from_utf8_lossy(&output.stdout).into_owned();
    let audio_line = stderr.lines().find(|l| l.contains("audio: alsa")).unwrap_or("");
    println!("platform: {}", audio_line.trim());
    let underruns = stat(stats.as_str(), "underruns");
    let m = read_markers(&dump);
    println!(
        "{} markers kept of {frames} frames (the ring holds the newest {}); underruns in the run: {underruns}",
        m.len(),
        handmade_api::AUDIO_SYNC_MARKERS
    );

    let rate = 48_000.0;
    let per_frame = rate / 60.0;
    // Play cursor at each marker: what was written before it minus what was still queued.
    let play: Vec<f64> = m.iter().map(|r| (r[0] - r[2]) as f64).collect();
    let errors: Vec<f64> = play.windows(2).map(|w| (w[1] - (w[0] + per_frame)).abs()).collect();
    let advance: Vec<f64> = play.windows(2).map(|w| w[1] - w[0]).collect();
    let queued: Vec<f64> = m.iter().map(|r| r[2] as f64).collect();
    let written: Vec<f64> = m.iter().map(|r| r[1] as f64).collect();
    let e = report("|play cursor - prediction|", &errors, "samples");
    let a = report("play cursor advance per frame", &advance, "samples");
    let q = report("queued before the write", &queued, "frames");
    let w = report("written per frame", &written, "frames");
    let spread = |v: &[f64]| {
        let d = dist(v);
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        (d.max - lo) / d.p50.max(1.0) * 100.0
    };
    verdict(
        "the write-cursor prediction is within 40 samples",
        &format!("|actual - predicted| play cursor one frame ahead: p50 {:.0}, p99 {:.0}, max {:.0} samples ({:.2} ms at p99); the play cursor advanced p50 {:.0} samples per frame", e.p50, e.p99, e.max, e.p99 / rate * 1e3, a.p50),
        &format!(
            "the prediction assumes the device plays exactly {per_frame:.0} samples between frames; in this run it {} within 40 samples at p99 ({:.0}), with {underruns} underrun(s); the error holds both the frame loop's own timing (a late frame finds more played) and the steps in which the device reports its position, and the markers carry no timestamps to split them",
            if e.p99 <= 40.0 { "stayed" } else { "did not stay" },
            e.p99
        ),
    );
    let mut sums: Vec<i64> = m.iter().map(|r| r[1] + r[2]).collect();
    sums.sort_unstable();
    let top = sums[sums.len() / 2];
    let at_top = sums.iter().filter(|&&v| v == top).count();
    verdict(
        "marker stability is under 10%",
        &format!("queued before the write: p50 {:.0} frames, min-to-max spread {:.1}% of p50; written per frame p50 {:.0}, spread {:.1}%", q.p50, spread(&queued), w.p50, spread(&written)),
        &format!(
            "over the {} newest markers the queue's spread was {}10% and the write sizes' {}10%; written + queued was {top} frames in {at_top} of them: each write tops the queue up to one level, so the write size moves with whatever the queue did",
            m.len(),
            if spread(&queued) < 10.0 { "under " } else { "over " },
            if spread(&written) < 10.0 { "under " } else { "over " }
        ),
    );
    Plot::new()
        .series(m.iter().enumerate().map(|(i, r)| (i as f64, r[2] as f64)))
        .series(m.iter().enumerate().map(|(i, r)| (i as f64, r[1] as f64)))
        .series(errors.iter().enumerate().map(|(i, &v)| (i as f64 + 1.0, v)))
        .save("l4_5_markers", "x: marker (one per frame, newest last), y: frames; red: queued before the write, blue: written, green: |play cursor - prediction|");
}
