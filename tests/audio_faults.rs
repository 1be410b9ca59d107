//! Sound-output faults (issue 16) through the real backends: ALSA devices defined in a private
//! `~/.asoundrc` (alsa-lib's `null` device, and an a52 encoder whose rate is fixed at 44.1 kHz,
//! feeding `null`), the offline WAV writer, and SDL2 against a PulseAudio null sink that stops
//! answering (`.ci/pulse-null-sink.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{build_game_variant, platform_binary, stat_u64};

/// A HOME whose `.asoundrc` defines `handmade_44k`: a device that takes 48 kHz requests but
/// grants 44.1 kHz (a52's rate is fixed; `linear` in front gives it S16 interleaved access).
fn alsa_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp HOME");
    std::fs::write(
        home.path().join(".asoundrc"),
        "pcm.handmade_a52 { type a52; slavepcm \"null\"; rate 44100; channels 2; card 0 }\n\
         pcm.handmade_44k { type linear; slave { pcm \"handmade_a52\"; format S32_LE } }\n",
    )
    .expect("write .asoundrc");
    home
}

fn run_alsa(home: &Path, device: &str, frames: u32, extra: &[&str]) -> Output {
    Command::new(platform_binary())
        .args(["--headless", "--audio", "alsa", "--alsa-device", device, "--stats", "--no-rebuild"])
        .args(["--frames", &frames.to_string()])
        .arg("--game-lib")
        .arg(build_game_variant(""))
        .args(extra)
        .env("HOME", home)
        .env("RUST_LOG", "info")
        .output()
        .expect("run the handmade binary")
}

fn lines_with(output: &Output, text: &str) -> usize {
    String::from_utf8_lossy(&output.stderr).lines().filter(|l| l.contains(text)).count()
}

/// The sync markers `--sync-dump` wrote: (frames_written, queued_frames) per frame.
fn sync_markers(path: &PathBuf) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(path).expect("read the sync dump");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|v| v.parse().unwrap()).collect();
            (f[1], f[2])
        })
        .collect()
}

/// Issue 16.10: a device that grants another rate than asked for. The game is told the real
/// rate, and the queue is kept at target + one frame counted in the device's frames: at
/// 44.1 kHz and 60 fps with the default 33.3 ms that is 1470 + 735 frames (not 1600 + 800).
#[test]
fn alsa_paces_at_the_rate_the_device_granted() {
    let home = alsa_home();
    let dump = home.path().join("sync.txt");
    let output = run_alsa(home.path(), "handmade_44k", 60, &["--sync-dump", dump.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(lines_with(&output, "runs at 44100 Hz, not the 48000 Hz asked for"), 1, "{stderr}");
    assert_eq!(lines_with(&output, "audio: alsa (44100 Hz"), 1, "{stderr}");
    let markers = sync_markers(&dump);
    assert_eq!(markers.len(), 60);
    for (frame, &(written, queued)) in markers.iter().enumerate() {
        assert_eq!(written + queued, 1470 + 735, "frame {frame}: wrote {written} onto {queued} queued");
    }
    assert_eq!(stat_u64(&output.stdout, "underruns"), 0);
}

/// Issue 16.13b: alsa-lib's `null` device reports a delay of 0 whatever is written. The
/// platform notices, says so once, and from then on writes exactly one frame's sound per frame
/// (it ran the sound clock 3x fast with an underrun each frame before).
#[test]
fn alsa_null_device_is_paced_by_the_frame_clock() {
    let home = alsa_home();
    let dump = home.path().join("sync.txt");
    let output = run_alsa(home.path(), "null", 120, &["--sync-dump", dump.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(lines_with(&output, "reports no delay"), 1, "said once:\n{stderr}");
    assert_eq!(stat_u64(&output.stdout, "underruns"), 0, "{stderr}");
    let markers = sync_markers(&dump);
    let steady = &markers[10..];
    assert!(steady.iter().all(|&(written, _)| written == 800), "one frame's sound per frame: {steady:?}");
    let total = stat_u64(&output.stdout, "sound_frames");
    assert!(total <= 120 * 800 + 10 * 1600, "the sound clock ran ahead: {total} frames in 120 frames");
}

/// Issue 15.3: `--audio wav` with nowhere to write says, in one line, that the sound is
/// discarded, instead of running as `none` without a word.
#[test]
fn wav_without_a_path_says_the_sound_is_discarded() {
    let output = Command::new(platform_binary())
        .args(["--headless", "--audio", "wav", "--frames", "3", "--stats", "--no-rebuild", "--game-lib"])
        .arg(build_game_variant(""))
        .env("RUST_LOG", "info")
        .output()
        .expect("run the handmade binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(lines_with(&output, "without --wav-out PATH: the sound is discarded"), 1, "{stderr}");
    assert_eq!(stat_u64(&output.stdout, "frames"), 3);
}
