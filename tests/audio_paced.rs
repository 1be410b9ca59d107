//! Paced sound through real backends (issue 3): 10 s of the demo's 256 Hz tone with a forced
//! reload every 20 frames, through ALSA (pulse plugin) and through SDL2 (pulseaudio driver) into
//! a private PulseAudio null sink, recorded from its monitor and checked sample by sample.
//!
//! Needs pulseaudio (.ci/setup.sh). Without it the test says so and skips, except under
//! `CI=true`, where a skip would hide a broken machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{build_game_variant, check_tone, read_wav, stat_u64, RATE, TONE_HZ};

/// One paced run at a time: two sound servers and two players on a small machine would
/// measure the machine's load, not the backends.
static SERIAL: Mutex<()> = Mutex::new(());

const AMPLITUDE: f64 = common::DEFAULT_AMPLITUDE;
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
    let game_lib = build_game_variant("");
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
    assert!(stderr.contains(&format!("audio: {backend}")), "the run did not use {backend}:\n{stderr}");
    let (left, right) = read_wav(&wav);
    check_continuous_sine(&left, &right, backend);
    for key in ["underruns", "sound_heap_allocs", "heap_allocs_after_warmup"] {
        assert_eq!(stat_u64(&output.stdout, key), 0, "{key}:\n{stdout}");
    }
    assert_eq!(stat_u64(&output.stdout, "reloads"), 29, "{stdout}");
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

/// One continuous sine between the first and last sound: same on both channels, the right
/// amplitude and pitch, no discontinuity anywhere in the cycle (`handmade_support::check_tone`: the
/// recurrence residual of a pure sine), no gap, and about as long as the run.
fn check_continuous_sine(left: &[f64], right: &[f64], backend: &str) {
    let loud = |s: &f64| s.abs() > 0.01;
    let first = left.iter().position(loud).expect("the recording is silent");
    let last = left.iter().rposition(loud).unwrap();
    let trim = (TRIM_SECONDS * RATE) as usize;
    assert!(last > first + 2 * trim, "{backend}: almost no sound recorded");
    let seconds = (last - first) as f64 / RATE;
    assert!((9.5..=10.6).contains(&seconds), "{backend}: {seconds:.2} s of sound, expected about 10 s");
    let (body, body_right) = (&left[first + trim..last - trim], &right[first + trim..last - trim]);
    let differ = body.iter().zip(body_right).position(|(l, r)| (l - r).abs() > 2.0 / 32768.0);
    assert!(differ.is_none(), "{backend}: channels differ at {differ:?}");
    let report = check_tone(body, TONE_HZ, RATE);
    let at = report.first_discontinuity.map(|i| (first + trim) as f64 / RATE + i as f64 / RATE);
    assert_eq!(report.discontinuities, 0, "{backend}: discontinuity at {at:?} s: {report:?}");
    assert!(report.longest_silence <= 2, "{backend}: a gap: {report:?}");
    assert!((report.peak - AMPLITUDE).abs() < 0.01, "{backend}: {report:?}");
    assert!((report.frequency_hz - TONE_HZ).abs() < 0.5, "{backend}: {report:?}");
}

#[test]
fn alsa_survives_the_sound_server_dying_and_coming_back() {
    server_dies_and_returns("alsa", "alsa: lost", "alsa: `default` reopened");
}

#[test]
fn sdl_survives_the_sound_server_dying_and_coming_back() {
    server_dies_and_returns("sdl", "sdl: the audio device stopped", "sdl: audio device reopened");
}

/// Kills the private PulseAudio 1.5 s into a 6 s run and starts it again a second later: the
/// frame loop keeps its pace throughout, the loss and the recovery are one line each.
fn server_dies_and_returns(backend: &str, lost: &str, reopened: &str) {
    if !pulseaudio_available() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let game_lib = build_game_variant("");
    let script = format!(
        "'{}' --headless --audio {backend} --frames 360 --stats --no-rebuild --game-lib '{}' & p=$!; \
         sleep 1.5; \"$PULSE_NULL_SINK_KILL\"; sleep 1; (\"$PULSE_NULL_SINK_START\" &); wait $p",
        env!("CARGO_BIN_EXE_handmade"),
        game_lib.display()
    );
    let started = std::time::Instant::now();
    let output = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/pulse-null-sink.sh"))
        .args(["run", "--", "bash", "-c", &script])
        .output()
        .expect("run .ci/pulse-null-sink.sh");
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{backend}:\n{stdout}\n{stderr}");
    assert_eq!(stat_u64(&output.stdout, "frames"), 360, "{stdout}");
    assert!(seconds < 12.0, "{backend}: 6 s of frames took {seconds:.1} s: the loop was held up");
    let count = |text: &str| stderr.lines().filter(|l| l.contains(text)).count();
    assert_eq!(count(lost), 1, "{backend}: the loss is said once:\n{stderr}");
    assert_eq!(count(reopened), 1, "{backend}: and so is the recovery:\n{stderr}");
}
