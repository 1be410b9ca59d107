//! The demo game heard offline (`--headless --audio wav`): scripted input moves the player, and
//! the WAV shows the tone's pitch following its height and its pan following its x; the loop
//! key mixes in the sample; a missing or malformed `loop.wav` costs one clear line, not the run.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const FRAMES: &str = "150";
/// Analyse the last second: the player stopped moving at frame 60, the glides have settled.
const SETTLED_FROM: usize = 90 * 800;

/// Runs the default game with an optional input script and data dir; returns the WAV channels
/// and the process output.
fn run_demo(script: Option<&str>, data_dir: Option<&Path>) -> ((Vec<f64>, Vec<f64>), std::process::Output) {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let script_path = dir.path().join("input.txt");
    let mut args: Vec<String> = ["--headless", "--audio", "wav", "--frames", FRAMES, "--no-rebuild", "--game-lib"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(game.display().to_string());
    args.extend(["--wav-out".to_string(), wav.display().to_string()]);
    if let Some(text) = script {
        fs::write(&script_path, text).unwrap();
        args.extend(["--input-script".to_string(), script_path.display().to_string()]);
    }
    if let Some(data) = data_dir {
        args.extend(["--data-dir".to_string(), data.display().to_string()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_platform(&refs);
    expect_success(&out);
    (read_wav(&wav), out)
}

/// Frequency from rising zero crossings (interpolated), over `samples`.
fn frequency(samples: &[f64]) -> f64 {
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + w[0] / (w[0] - w[1]))
        .collect();
    assert!(crossings.len() > 10, "no tone to measure");
    let span = crossings.last().unwrap() - crossings[0];
    (crossings.len() - 1) as f64 * RATE / span
}

fn power(samples: &[f64]) -> f64 {
    samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64
}

#[test]
fn holding_up_raises_the_pitch_and_keeps_the_centre_pan() {
    let ((left, right), _) = run_demo(None, None);
    let plain = frequency(&left[SETTLED_FROM..]);
    assert!((plain - 256.0).abs() < 0.5, "no input: 256 Hz, measured {plain:.2}");
    assert_eq!(left, right, "no input: both channels identical");

    // One second of `up` at 0.4 screens/s: height 0.5 -> 0.1, pitch 256 * 2^(2 * 0.4).
    let ((left, right), _) = run_demo(Some("0 up down\n60 up up\n"), None);
    let expected = 256.0 * 2f64.powf(0.8);
    let measured = frequency(&left[SETTLED_FROM..]);
    assert!((measured - expected).abs() < 2.0, "expected {expected:.1} Hz, measured {measured:.2}");
    let ratio = power(&right[SETTLED_FROM..]) / power(&left[SETTLED_FROM..]);
    assert!((ratio - 1.0).abs() < 1e-3, "pan stays centred when moving vertically: {ratio}");
}

#[test]
fn holding_right_pans_right_with_constant_power() {
    let ((left0, _), _) = run_demo(None, None);
    // x 0.5 -> 0.9: constant-power gains cos/sin(0.9 * 90 deg) * sqrt 2.
    let ((left, right), _) = run_demo(Some("0 right down\n60 right up\n"), None);
    let (pl, pr) = (power(&left[SETTLED_FROM..]), power(&right[SETTLED_FROM..]));
    let angle = 0.9 * std::f64::consts::FRAC_PI_2;
    let expected = (angle.sin() / angle.cos()).powi(2);
    assert!((pr / pl - expected).abs() / expected < 0.02, "right/left power {:.2}, expected {expected:.2}", pr / pl);
    let centre = power(&left0[SETTLED_FROM..]) * 2.0;
    assert!(((pl + pr) - centre).abs() / centre < 0.01, "total power kept: {} vs {centre}", pl + pr);
    assert!((frequency(&left[SETTLED_FROM..]) - 256.0).abs() < 0.5, "pitch unchanged");
}

#[test]
fn space_mixes_in_the_loop_and_its_echo() {
    let ((plain, _), _) = run_demo(None, None);
    let ((left, right), _) = run_demo(Some("30 space down\n31 space up\n"), None);
    let start = 30 * 800;
    assert_eq!(left[..start], plain[..start], "nothing changes before the key");
    let differs = left[start..].iter().zip(&plain[start..]).filter(|(a, b)| a != b).count();
    assert!(differs > 40_000, "the loop is heard ({differs} samples differ)");
    assert!(left.iter().chain(&right).all(|s| s.abs() <= 1.0));
}

#[test]
fn a_missing_or_malformed_loop_wav_is_one_line_and_the_run_goes_on() {
    let ((plain, _), _) = run_demo(None, None);
    let empty = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    fs::write(bad.path().join("loop.wav"), b"RIFF\x10\0\0\0WAVEnot really a wav").unwrap();
    for (dir, what) in [(empty.path(), "missing"), (bad.path(), "malformed")] {
        // `space` asks for the loop that is not there: nothing happens, the tone plays on.
        let ((left, _), out) = run_demo(Some("20 space down\n21 space up\n"), Some(dir));
        let lines: Vec<String> = stderr_lines(&out).into_iter().filter(|l| l.contains("loop.wav")).collect();
        assert_eq!(lines.len(), 1, "{what}: one line about loop.wav, got {lines:?}");
        assert!(lines[0].contains("cannot load"), "{what}: {}", lines[0]);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{what}: no panic");
        assert_eq!(left, plain, "{what}: the tone plays on unchanged");
    }
}
