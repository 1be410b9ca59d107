//! Paced sound through real backends (issue 3): 10 s of the demo's 256 Hz tone with a forced
//! reload every 20 frames, through ALSA (pulse plugin) and through SDL2 (pulseaudio driver) into
//! a private PulseAudio null sink, recorded from its monitor and checked sample by sample.
//!
//! Needs pulseaudio (.ci/setup.sh). Without it the test says so and skips, except under
//! `CI=true`, where a skip would hide a broken machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One paced run at a time: two sound servers and two players on a small machine would
/// measure the machine's load, not the backends.
static SERIAL: Mutex<()> = Mutex::new(());

const RATE: f64 = 48_000.0;
const TONE_HZ: f64 = 256.0;
const AMPLITUDE: f64 = 0.25;
/// Start/stop transients (stream start, the final drain) are not judged.
const TRIM_SECONDS: f64 = 0.3;

#[test]
fn alsa_plays_ten_seconds_without_a_gap() {
    play_and_check("alsa");
}

#[test]
fn sdl_plays_ten_seconds_without_a_gap() {
    play_and_check("sdl");
}

fn play_and_check(backend: &str) {
    if !pulseaudio_available() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let game_lib = game_library();
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join(format!("{backend}.wav"));
    let output = Command::new(root.join(".ci/pulse-null-sink.sh"))
        .arg("run")
        .arg("--record")
        .arg(&wav)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_handmade"))
        .args(["--headless", "--audio", backend, "--frames", "600"])
        .args(["--reload-every", "20", "--stats", "--no-rebuild"])
        .arg("--game-lib")
        .arg(&game_lib)
        .output()
        .expect("run .ci/pulse-null-sink.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{backend} run failed ({}):\n{stdout}\n{stderr}", output.status);
    let stats = stdout
        .lines()
        .find(|l| l.starts_with("stats:"))
        .unwrap_or_else(|| panic!("no stats line:\n{stdout}\n{stderr}"));
    assert!(stderr.contains(&format!("audio: {backend}")), "the run did not use {backend}:\n{stderr}");
    check_continuous_sine(&read_stereo(&wav), backend);
    assert_eq!(stat(stats, "underruns"), "0", "{stats}");
    assert_eq!(stat(stats, "sound_heap_allocs"), "0", "{stats}");
    assert_eq!(stat(stats, "heap_allocs_after_warmup"), "0", "{stats}");
    assert!(stats.contains("reloads=29"), "{stats}");
}

/// Skips (returns false) only when pulseaudio is missing and this is not CI.
fn pulseaudio_available() -> bool {
    let found = Command::new("pulseaudio").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pulseaudio is not installed and CI=true: run .ci/setup.sh"
        );
        eprintln!("SKIPPED audio_paced: pulseaudio is not installed (.ci/setup.sh installs it)");
    }
    found
}

/// `<target>/debug/libgame.so`, found from this test binary (`<target>/debug/deps/...`) and
/// built first if it is missing.
fn game_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("test binary lives in <target>/<profile>/deps");
    let lib = profile_dir.join("libgame.so");
    if !lib.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "game"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p game");
        assert!(status.success(), "cargo build -p game failed");
    }
    assert!(lib.exists(), "{} missing after building", lib.display());
    lib
}

fn stat<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn read_stereo(path: &Path) -> Vec<(f64, f64)> {
    let mut reader = hound::WavReader::open(path).expect("recording is a WAV file");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 48_000));
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("sample")).collect();
    samples.chunks_exact(2).map(|f| (f64::from(f[0]) / 32768.0, f64::from(f[1]) / 32768.0)).collect()
}

/// One continuous sine between the first and last sound: same on both channels, the right
/// amplitude and pitch, no sample-to-sample jump beyond the sine's steepest slope, no run of
/// zeros (a gap), and about as long as the run.
fn check_continuous_sine(frames: &[(f64, f64)], backend: &str) {
    let loud = |f: &(f64, f64)| f.0.abs() > 0.01;
    let first = frames.iter().position(loud).expect("the recording is silent");
    let last = frames.iter().rposition(loud).unwrap();
    let trim = (TRIM_SECONDS * RATE) as usize;
    assert!(last > first + 2 * trim, "{backend}: almost no sound recorded");
    let body = &frames[first + trim..last - trim];
    let seconds = frames[first..=last].len() as f64 / RATE;
    assert!((9.5..=10.6).contains(&seconds), "{backend}: {seconds:.2} s of sound, expected about 10 s");

    let lsb = 1.0 / 32768.0;
    let max_slope = AMPLITUDE * std::f64::consts::TAU * TONE_HZ / RATE;
    let mut zero_run = 0;
    let mut longest_zero_run = 0;
    let mut crossings = 0;
    let mut peak: f64 = 0.0;
    for (i, pair) in body.windows(2).enumerate() {
        let ((l0, r0), (l1, _)) = (pair[0], pair[1]);
        assert!((l0 - r0).abs() <= 2.0 * lsb, "{backend}: channels differ at {i}");
        let jump = (l1 - l0).abs();
        assert!(
            jump <= max_slope * 1.05 + 2.0 * lsb,
            "{backend}: discontinuity at {:.4} s: jump {jump:.5} > max slope {max_slope:.5}",
            (first + trim + i) as f64 / RATE
        );
        zero_run = if l0.abs() <= lsb { zero_run + 1 } else { 0 };
        longest_zero_run = longest_zero_run.max(zero_run);
        crossings += usize::from(l0 < 0.0 && l1 >= 0.0);
        peak = peak.max(l0.abs());
    }
    assert!(longest_zero_run <= 2, "{backend}: a gap of {longest_zero_run} silent samples");
    assert!((peak - AMPLITUDE).abs() < 0.01, "{backend}: peak {peak:.4}");
    let hz = crossings as f64 / (body.len() as f64 / RATE);
    assert!((hz - TONE_HZ).abs() < 1.0, "{backend}: {hz:.2} Hz, not {TONE_HZ}");
}
