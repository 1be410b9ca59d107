//! Paced sound through real backends (issue 3): 10 s of the demo's 256 Hz tone with a forced
//! reload every 20 frames, through ALSA (pulse plugin) and through SDL2 (pulseaudio driver) into
//! a private null sink, recorded from its monitor and checked sample by sample. Every test runs
//! through both servers people run (issue 12): PulseAudio (`.ci/pulse-null-sink.sh`) and
//! PipeWire with its pulse server (`.ci/pipewire-null-sink.sh`); the gaps the platform counted
//! (`gaps`) are compared with the gaps found in the recording. ALSA runs its default way of
//! feeding the device (`--alsa-io frame`, once a frame) everywhere, and through its audio I/O
//! thread (`--alsa-io thread`) in the ten-second runs and the server's death as well.
//!
//! Needs pulseaudio and pipewire (.ci/setup.sh). Without one the test says so and skips, except
//! under `CI=true`, where a skip would hide a broken machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{build_game_variant, check_tone, read_wav, stat_u64, steady_gaps, RATE, TONE_HZ};

/// One paced run at a time: two sound servers and two players on a small machine would
/// measure the machine's load, not the backends.
static SERIAL: Mutex<()> = Mutex::new(());

const AMPLITUDE: f64 = common::DEFAULT_AMPLITUDE;
/// Start/stop transients (stream start, the final drain) are not judged.
const TRIM_SECONDS: f64 = 0.3;

/// The sound servers a test runs through: the harness script and the programs it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Pulse,
    PipeWire,
}

impl Server {
    fn script(self) -> std::path::PathBuf {
        let name = match self {
            Server::Pulse => ".ci/pulse-null-sink.sh",
            Server::PipeWire => ".ci/pipewire-null-sink.sh",
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    fn programs(self) -> &'static [&'static str] {
        match self {
            Server::Pulse => &["pulseaudio"],
            Server::PipeWire => &["pipewire", "wireplumber", "pipewire-pulse"],
        }
    }
}

#[test]
fn alsa_plays_ten_seconds_without_a_gap() {
    play_and_check("alsa", Server::Pulse);
}

#[test]
fn alsa_io_thread_plays_ten_seconds_without_a_gap() {
    play_and_check_with("alsa", Server::Pulse, &["--alsa-io", "thread"]);
}

#[test]
fn alsa_io_thread_plays_ten_seconds_without_a_gap_through_pipewire() {
    play_and_check_with("alsa", Server::PipeWire, &["--alsa-io", "thread"]);
}

#[test]
fn sdl_plays_ten_seconds_without_a_gap() {
    play_and_check("sdl", Server::Pulse);
}

#[test]
fn alsa_plays_ten_seconds_without_a_gap_through_pipewire() {
    play_and_check("alsa", Server::PipeWire);
}

#[test]
fn sdl_plays_ten_seconds_without_a_gap_through_pipewire() {
    play_and_check("sdl", Server::PipeWire);
}

fn play_and_check(backend: &str, server: Server) {
    play_and_check_with(backend, server, &[]);
}

/// As `play_and_check`, with `extra` arguments for the platform.
fn play_and_check_with(backend: &str, server: Server, extra: &[&str]) {
    if !server_available(server) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let game_lib = build_game_variant("");
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join(format!("{backend}.wav"));
    let output = Command::new(server.script())
        .arg("run")
        .arg("--record")
        .arg(&wav)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_handmade"))
        .args(["--headless", "--audio", backend, "--frames", "600"])
        .args(["--reload-every", "20", "--stats", "--no-rebuild"])
        .args(extra)
        .arg("--game-lib")
        .arg(&game_lib)
        .output()
        .expect("run .ci/pulse-null-sink.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{backend} run failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stderr.contains(&format!("audio: {backend}")), "the run did not use {backend}:\n{stderr}");
    let (left, right) = read_wav(&wav);
    let backend = &format!("{backend} through {server:?}");
    let heard = steady_gaps(&left, TONE_HZ, RATE);
    let counted = stat_u64(&output.stdout, "gaps");
    check_gaps(counted, heard, backend, &stdout);
    check_continuous_sine(&left, &right, backend, heard > 0);
    for key in ["underruns", "sound_heap_allocs", "heap_allocs_after_warmup"] {
        assert_eq!(stat_u64(&output.stdout, key), 0, "{key}:\n{stdout}");
    }
    assert_eq!(stat_u64(&output.stdout, "reloads"), 29, "{stdout}");
}

/// Skips (returns false) only when the server's programs are missing and this is not CI.
fn server_available(server: Server) -> bool {
    let found = server.programs().iter().all(|p| {
        Command::new("sh").args(["-c", &format!("command -v {p}")]).output().is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{server:?} is not installed and CI=true: run .ci/setup.sh"
        );
        eprintln!("SKIPPED audio_paced: {server:?} is not installed (.ci/setup.sh installs it)");
    }
    found
}

/// The machine is shared: other builds can stall the sound path however it is scheduled (a
/// page fault waiting on the disk), and a gap or two in ten seconds is then the machine's.
/// Tolerated only when few. The platform's `gaps` figure is an estimate from the device's
/// delay (it cannot see the server's own queue): tests/audio_pipewire.rs checks it against a
/// recording with many real gaps.
const MACHINE_GAPS: u64 = 2;

fn check_gaps(counted: u64, heard: u64, backend: &str, stdout: &str) {
    let what = format!("{backend}: {counted} gaps counted by the platform, {heard} found in the recording");
    assert!(heard <= MACHINE_GAPS, "{what}:\n{stdout}");
    // The estimate is printed, not checked, here: at this latency it has counted a few short
    // gaps the recording did not have (3 against 0 in one idle run). tests/audio_pipewire.rs
    // checks it where the sound really breaks up.
    eprintln!("{what}");
    if heard > 0 {
        eprintln!("{what}: tolerated as the shared machine's (at most {MACHINE_GAPS})");
    }
}

/// One continuous sine between the first and last sound: same on both channels, the right
/// amplitude and pitch, no discontinuity anywhere in the cycle (`handmade_support::check_tone`: the
/// recurrence residual of a pure sine), no gap, and about as long as the run.
/// With `gaps_seen` (counted and compared by `check_gaps`) the discontinuity checks are left out.
fn check_continuous_sine(left: &[f64], right: &[f64], backend: &str, gaps_seen: bool) {
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
    if !gaps_seen {
        assert_eq!(report.discontinuities, 0, "{backend}: discontinuity at {at:?} s: {report:?}");
        assert!(report.longest_silence <= 2, "{backend}: a gap: {report:?}");
    }
    assert!((report.peak - AMPLITUDE).abs() < 0.01, "{backend}: {report:?}");
    assert!((report.frequency_hz - TONE_HZ).abs() < 0.5, "{backend}: {report:?}");
}

#[test]
fn alsa_survives_the_sound_server_dying_and_coming_back() {
    server_dies_and_returns("alsa", Server::Pulse, "alsa: lost", "alsa: `default` reopened");
}

#[test]
fn sdl_survives_the_sound_server_dying_and_coming_back() {
    server_dies_and_returns("sdl", Server::Pulse, "sdl: the audio device stopped", "sdl: audio device reopened");
}

/// The audio I/O thread loses the device, says so once and is handed the reopened one.
#[test]
fn alsa_io_thread_survives_the_sound_server_dying_and_coming_back() {
    server_dies_and_returns("alsa --alsa-io thread", Server::Pulse, "alsa: lost", "alsa: `default` reopened");
}

#[test]
fn alsa_io_thread_survives_pipewire_dying_and_coming_back() {
    server_dies_and_returns("alsa --alsa-io thread", Server::PipeWire, "alsa: lost", "alsa: `default` reopened");
}

#[test]
fn alsa_survives_pipewire_dying_and_coming_back() {
    server_dies_and_returns("alsa", Server::PipeWire, "alsa: lost", "alsa: `default` reopened");
}

#[test]
fn sdl_survives_pipewire_dying_and_coming_back() {
    server_dies_and_returns("sdl", Server::PipeWire, "sdl: the audio device stopped", "sdl: audio device reopened");
}

/// Kills the private server 1.5 s into a 10 s run and starts it again a second later: the
/// frame loop keeps its pace throughout, the loss and the recovery are one line each. (A
/// restarted PipeWire has now and then never answered, about once in 20 restarts: its
/// pipewire-pulse accepted connections and answered none. The cause was not found; the
/// harness now waits for WirePlumber before the pulse server, starts the servers again when
/// the pulse server has not answered in 2 s, and says so on stderr.)
fn server_dies_and_returns(backend: &str, server: Server, lost: &str, reopened: &str) {
    if !server_available(server) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let game_lib = build_game_variant("");
    let script = format!(
        "'{}' --headless --audio {backend} --frames 600 --stats --no-rebuild --game-lib '{}' & p=$!; \
         sleep 1.5; \"$PULSE_NULL_SINK_KILL\"; sleep 1; (\"$PULSE_NULL_SINK_START\" &); wait $p",
        env!("CARGO_BIN_EXE_handmade"),
        game_lib.display()
    );
    let started = std::time::Instant::now();
    let output = Command::new(server.script())
        .args(["run", "--", "bash", "-c", &script])
        .output()
        .expect("run .ci/pulse-null-sink.sh");
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{backend}:\n{stdout}\n{stderr}");
    assert_eq!(stat_u64(&output.stdout, "frames"), 600, "{stdout}");
    assert!(
        seconds < 16.0,
        "{backend}: 10 s of frames took {seconds:.1} s with the harness: held up:\n{stdout}\n{stderr}"
    );
    let count = |text: &str| stderr.lines().filter(|l| l.contains(text)).count();
    assert_eq!(count(lost), 1, "{backend}: the loss is said once:\n{stderr}");
    assert_eq!(count(reopened), 1, "{backend}: and so is the recovery:\n{stderr}");
}
