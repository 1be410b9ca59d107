//! Sound through PipeWire (issue 12), beyond what audio_paced.rs runs through both servers:
//! the platform's `gaps` figure against the gaps in the recording when there are many (a
//! latency too low to be clean), through PipeWire (both ALSA plugins: pulse into
//! pipewire-pulse, and PipeWire's own, tests/audio_pipewire_alsa.rs) and through PulseAudio,
//! and SDL2's into PipeWire;
//! and the one line saying what real-time priority was granted. SDL through SDL's own
//! PipeWire driver is in audio_sdl_pipewire.rs.
//!
//! Needs pipewire, wireplumber, pipewire-pulse and pulseaudio (.ci/setup.sh); without them the
//! tests say so and skip, except under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use common::{build_game_variant, find_gaps, read_wav, stat_u64, steady_part, RATE, TONE_HZ};

/// One paced run at a time (see audio_paced.rs).
static SERIAL: Mutex<()> = Mutex::new(());

fn harness(server: &str) -> Option<PathBuf> {
    let programs: &[&str] = match server {
        "pipewire" => &["pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon"],
        _ => &["pulseaudio"],
    };
    let found = programs.iter().all(|p| {
        Command::new("sh").args(["-c", &format!("command -v {p}")]).output().is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{server} is not installed and CI=true: .ci/setup.sh");
        eprintln!("SKIPPED: {server} is not installed (.ci/setup.sh installs it)");
        return None;
    }
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".ci/{server}-null-sink.sh")))
}

/// Runs the platform headless through `server`'s null sink, recorded; `env` is set for it.
fn run_recorded(server: &str, wav: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<Output> {
    run_game_recorded(server, "", wav, args, env)
}

/// As `run_recorded`, with the game built with `features` (`build_game_variant`).
fn run_game_recorded(server: &str, features: &str, wav: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<Output> {
    let script = harness(server)?;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(script)
        .arg("run")
        .arg("--record")
        .arg(wav)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_handmade"))
        .args(["--headless", "--stats", "--no-rebuild", "--game-lib"])
        .arg(build_game_variant(features))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .output()
        .expect("run the null-sink harness");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{server}: {}\n{stderr}", output.status);
    Some(output)
}

/// The gaps in the recording's body: from half a second into the sound (the platform's gap
/// count settles for that long after the device starts) to 0.3 s before its end.
fn recorded_gaps(wav: &Path) -> (u64, Vec<f64>) {
    let (left, _) = read_wav(wav);
    let body = left[steady_part(&left, RATE).expect("the recording is silent or too short")].to_vec();
    (find_gaps(&body, TONE_HZ, RATE).len() as u64, body)
}

/// A run with many real gaps: the platform cannot hear the sink, but it sees its play
/// position fall behind the clock, and some devices say themselves that they ran out; its
/// `gaps` must agree with the recording's. The device's own underrun figure is printed beside
/// them. How the sound is made to break: through PipeWire, 2 ms, below its quantum; through
/// PulseAudio, whose sink runs in blocks of the period asked for (a quarter of the target) and
/// is nearly clean at 2 ms since, a game that hitches (`hitch`: a 40 ms frame every 45).
/// `env` is for the harness (`PIPEWIRE_NULL_SINK_ALSA=pipewire`: PipeWire's own ALSA plugin).
fn gaps_agree_with_the_recording(server: &str, latency_ms: &str, game: &str, env: &[(&str, &str)]) {
    gaps_agree("alsa", server, latency_ms, game, env);
}

fn gaps_agree(backend: &str, server: &str, latency_ms: &str, game: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("low.wav");
    let args = ["--audio", backend, "--latency-ms", latency_ms, "--frames", "300"];
    let Some(output) = run_game_recorded(server, game, &wav, &args, env) else {
        return;
    };
    let server = format!("{backend} into {server}{}", if env.is_empty() { "" } else { " (pipewire plugin)" });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (heard, _) = recorded_gaps(&wav);
    let counted = stat_u64(&output.stdout, "gaps");
    let underruns = stat_u64(&output.stdout, "underruns");
    eprintln!("{server}: gaps counted {counted}, in the recording {heard}, device underruns {underruns}");
    assert!(
        heard >= 5,
        "{server}: {latency_ms} ms, game `{game}`: should break up; the comparison needs gaps:\n{stdout}"
    );
    // The figure is an estimate: it cannot see the server's own queue, a silence can show as
    // two steps, and short gaps close together merge in the recording. Seen over repeated runs
    // on this machine (2026-12-02): through the pulse plugin into PipeWire 17 vs 15, 16 vs 14,
    // 18 vs 12; through PipeWire's plugin 79 vs 67, 76 vs 65, 76 vs 64; through PulseAudio with
    // the hitching game 8, 12 and 10 vs 6. Within a factor of four of the recording, not
    // agreement to the gap, is what is checked.
    assert!(
        counted > 0 && counted * 4 >= heard && counted <= heard * 4,
        "{server}: the platform counted {counted} gaps, the recording has {heard} (more than 4x apart):\n{stdout}"
    );
}

#[test]
fn gaps_agree_with_the_recording_through_pipewire() {
    gaps_agree_with_the_recording("pipewire", "2", "", &[]);
}

/// Through PipeWire's own ALSA plugin (tests/audio_pipewire_alsa.rs): 2 ms is below the
/// 128-frame quantum the platform's wake-up size gives the graph, so it breaks up there too.
/// The plugin's delay figure moves a quantum at a time, too coarse to show a quantum's
/// silence; what counts the gaps there is the plugin's own EPIPE, which it raises for every
/// cycle it pads with silence (`GapDetector::device_gaps`). Before the platform counted those,
/// `gaps` saw 12 of 64 and 20 of 63 recorded gaps in two runs.
#[test]
fn gaps_agree_with_the_recording_through_pipewires_alsa_plugin() {
    gaps_agree_with_the_recording("pipewire", "2", "", &[("PIPEWIRE_NULL_SINK_ALSA", "pipewire")]);
}

/// SDL2 (its pulseaudio driver) with the hitching game, into PipeWire: SDL's figure is its own
/// queue plus its device buffer, so a queue that runs dry shows as the play position stopping
/// (4 and 5 counted against 6 in two runs). Not into PulseAudio: there, at 20 ms with the
/// tests' unoptimised game, SDL's path leaves some 60 short gaps (1.35 ms) in 5 s besides the
/// hitches, and the figure counts 5 (README, "Sound servers").
#[test]
fn sdl_gaps_agree_with_the_recording_through_pipewire() {
    gaps_agree("sdl", "pipewire", "20", "hitch", &[]);
}

#[test]
fn gaps_agree_with_the_recording_through_pulseaudio() {
    gaps_agree_with_the_recording("pulse", "5", "hitch", &[]);
}

/// Real-time priority is on by default and said in one line; `--no-rt` turns it off, also
/// said in one line. Where it is granted (root here, or RLIMIT_RTPRIO), the line names the
/// sound library's I/O thread and the ALSA backend's own (`--alsa-io thread`) that were
/// promoted with the frame thread.
#[test]
fn real_time_priority_is_said_once_and_turned_off_by_no_rt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("rt.wav");
    for (flag, expected) in [(None, "real-time: "), (Some("--no-rt"), "real-time: off (--no-rt)")] {
        let mut args = vec!["--audio", "alsa", "--alsa-io", "thread", "--frames", "60"];
        args.extend(flag);
        let Some(output) = run_recorded("pipewire", &wav, &args, &[]) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("real-time:")).collect();
        assert_eq!(lines.len(), 1, "{flag:?}:\n{stderr}");
        assert!(lines[0].contains(expected), "{flag:?}: {}", lines[0]);
        // SAFETY: geteuid only reads the process's credentials.
        if flag.is_none() && unsafe { libc::geteuid() } == 0 {
            let io = ["SCHED_FIFO", "threaded-ml", "handmade-audio"];
            assert!(io.iter().all(|name| lines[0].contains(name)), "{}", lines[0]);
        }
    }
}

/// Issue 12, item 3, the goal: at `--latency-ms 5` through PipeWire, the ALSA backend's audio
/// I/O thread (`--alsa-io thread`) keeps the sound unbroken. Counted in the recording; the
/// shared machine may add a gap or two (as audio_paced.rs allows). The run also shows the
/// thread was used, and that the frame and sound path made no allocation with it.
///
/// Not met yet, so ignored: on this shared 2-core machine it left 23-33 one-quantum gaps in
/// 20 s (median of 2, README "Sound servers"), fewer than once a frame at 5 ms (45-93) but not
/// none. `cargo test --test audio_pipewire -- --ignored` runs it.
#[test]
#[ignore = "not met: 23-33 gaps in 20 s at 5 ms through PipeWire on the shared machine (README)"]
fn alsa_io_thread_is_unbroken_at_5_ms_through_pipewire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("thread.wav");
    let args = ["--audio", "alsa", "--alsa-io", "thread", "--latency-ms", "5", "--frames", "600"];
    let Some(output) = run_recorded("pipewire", &wav, &args, &[]) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fed by the audio I/O thread"), "not thread mode:\n{stderr}");
    let (heard, body) = recorded_gaps(&wav);
    let seconds = body.len() as f64 / RATE + 0.8;
    assert!((9.5..=10.6).contains(&seconds), "{seconds:.2} s of sound for 10 s of frames");
    eprintln!("pipewire, thread mode, 5 ms: {heard} gaps in the recording");
    assert!(heard <= 2, "{heard} gaps in 10 s at 5 ms through PipeWire in thread mode:\n{stdout}");
    for key in ["underruns", "sound_heap_allocs", "heap_allocs_after_warmup"] {
        assert_eq!(stat_u64(&output.stdout, key), 0, "{key}:\n{stdout}");
    }
}
