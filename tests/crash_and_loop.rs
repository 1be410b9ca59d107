//! The dev loop's safety nets, end to end: a freshly loaded library that panics is rolled back
//! to the previous one and its state; one that panics with nothing to roll back to pauses the
//! game while the platform keeps running; live loop recording replays what it recorded.

mod common;

use std::fs;
use std::thread::sleep;
use std::time::Duration;

use common::*;

const FRAME: usize = 800;
/// Largest sample-to-sample step of a 0.25 sine at 256 Hz plus a 5 ms fade's own slope.
const MAX_SMOOTH_STEP: f64 = 0.0095;

fn largest_step(samples: &[f64]) -> (usize, f64) {
    samples
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i, (w[1] - w[0]).abs()))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
}

#[test]
fn a_fresh_library_that_panics_is_rolled_back_without_a_click() {
    let good = build_game_variant("");
    let crashing = build_game_variant("panic-sound");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    fs::copy(&good, &live).unwrap();
    let wav = dir.path().join("out.wav");
    let child = spawn_paced(&live, &wav, 200, &[]);
    sleep(Duration::from_millis(1200));
    let staged = dir.path().join("staged.so");
    fs::copy(&crashing, &staged).unwrap();
    fs::rename(&staged, &live).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(stat_u64(&out.stdout, "reloads"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "rollbacks"), 1, "{stderr}");
    let logged: Vec<&str> = stderr.lines().filter(|l| l.contains("rolled back")).collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(logged[0].contains("game_output_sound") && logged[0].contains("sound failed on purpose"), "{}", logged[0]);

    let (left, right) = read_wav(&wav);
    assert_eq!(left, right);
    let (at, step) = largest_step(&left);
    assert!(step < MAX_SMOOTH_STEP, "a click of {step:.4} at sample {at}");
    // The frame that crashed dips to silence; before it the old code's sine, after it the old
    // code again, resumed from the snapshot taken just before the swap: one frame later in
    // time, so 800 samples behind, faded in over 5 ms.
    let silent = left.chunks(FRAME).position(|b| b[b.len() / 2..].iter().all(|&s| s == 0.0)).expect("a dip");
    let crash = silent * FRAME;
    assert!(max_error_steps(&left[..crash], |_| DEFAULT_AMPLITUDE) <= 1.0, "before the crash");
    let resumed = &left[crash + FRAME + 240..];
    let shifted = resumed
        .iter()
        .enumerate()
        .map(|(i, &s)| ((s - DEFAULT_AMPLITUDE * ideal_tone(crash + 240 + i)) * 32767.0).abs())
        .fold(0.0, f64::max);
    assert!(shifted <= 1.0, "after the rollback the old code continues from its snapshot ({shifted} steps off)");
}

#[test]
fn a_panic_with_nothing_to_roll_back_to_pauses_until_a_good_build() {
    let good = build_game_variant("");
    let crashing = build_game_variant("panic-sound");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    fs::copy(&crashing, &live).unwrap();
    let wav = dir.path().join("out.wav");
    let child = spawn_paced(&live, &wav, 180, &[]);
    sleep(Duration::from_millis(1200));
    let staged = dir.path().join("staged.so");
    fs::copy(&good, &staged).unwrap();
    fs::rename(&staged, &live).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(stat_u64(&out.stdout, "game_panics"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "rollbacks"), 0, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 1, "{stderr}");
    assert!(stderr.contains("game paused until the next good build"), "{stderr}");
    let (left, _) = read_wav(&wav);
    assert_eq!(left.len(), 180 * FRAME, "the platform kept running");
    let (at, step) = largest_step(&left);
    assert!(step < MAX_SMOOTH_STEP, "a click of {step:.4} at sample {at}");
    let blocks: Vec<bool> = left.chunks(FRAME).map(|b| b.iter().any(|&s| s != 0.0)).collect();
    let resumed = blocks.iter().skip(2).position(|&b| b).expect("the good build was heard") + 2;
    assert!(blocks[2..resumed].iter().all(|&b| !b), "silence while paused");
    assert!(blocks[resumed..].iter().all(|&b| b), "sound after the good build");
}

#[test]
fn loop_recording_replays_the_recorded_segment() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("input.txt");
    // Record frames 30..90 (the player moves right for a while), then loop them.
    fs::write(&script, "30 l down\n31 l up\n40 right down\n70 right up\n90 l down\n91 l up\n").unwrap();
    let wav = dir.path().join("out.wav");
    let loop_file = dir.path().join("loop.hml");
    let out = run_platform(&[
        "--headless",
        "--audio",
        "wav",
        "--frames",
        "271",
        "--stats",
        "--no-rebuild",
        "--game-lib",
        game.to_str().unwrap(),
        "--wav-out",
        wav.to_str().unwrap(),
        "--input-script",
        script.to_str().unwrap(),
        "--loop-file",
        loop_file.to_str().unwrap(),
    ]);
    expect_success(&out);
    let (left, _) = read_wav(&wav);
    let block = |from: usize, to: usize| &left[from * FRAME..to * FRAME];
    let recorded = block(30, 90);
    let unchanged = |a: &[f64], b: &[f64]| {
        // Skip the 5 ms fades at each end of a loop pass.
        a[240..a.len() - 240].iter().zip(&b[240..b.len() - 240]).all(|(x, y)| (x - y).abs() < 1e-9)
    };
    // Playback starts the frame after the toggle (frame 90), so the toggle frame can fade out.
    for pass in 0..3 {
        let start = 91 + pass * 60;
        assert!(unchanged(recorded, block(start, start + 60)), "pass {pass} differs from the recording");
    }
    assert!(!unchanged(recorded, block(31, 91)), "the comparison can fail");
    let (at, step) = largest_step(&left[90 * FRAME - 1000..]);
    assert!(step < 0.05, "loop restarts fade instead of clicking ({step:.4} at {at})");
    // The snapshot and inputs live in the memory-mapped file, which is complete and valid.
    let bytes = fs::read(&loop_file).unwrap();
    assert_eq!(&bytes[..6], b"HMLOOP");
    handmade::check_recording(&bytes, 64 << 20).unwrap();

    // The same file replayed from the start; a damaged copy is one clear line, and the run goes on.
    let truncated = dir.path().join("cut.hml");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = run_platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "10",
        "--no-rebuild",
        "--game-lib",
        game.to_str().unwrap(),
        "--play-loop",
        truncated.to_str().unwrap(),
    ]);
    let stderr = expect_success(&out);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("loop file")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("truncated"), "{}", lines[0]);

    // The complete file in another run: the memory block is mapped where the recording had it
    // (the game's state holds pointers into it), and the segment plays again, sample for
    // sample. Only if something else already sits at that address is it refused, in one line.
    let replay = dir.path().join("replay.wav");
    let out = run_platform(&[
        "--headless",
        "--audio",
        "wav",
        "--wav-out",
        replay.to_str().unwrap(),
        "--frames",
        "120",
        "--no-rebuild",
        "--game-lib",
        game.to_str().unwrap(),
        "--play-loop",
        loop_file.to_str().unwrap(),
    ]);
    let stderr = expect_success(&out);
    if stderr.contains("cannot be replayed in this run") {
        let refused: Vec<&str> = stderr.lines().filter(|l| l.contains("loop file")).collect();
        assert_eq!(refused.len(), 1, "{stderr}");
        return;
    }
    assert!(stderr.contains("live loop: playing"), "{stderr}");
    let (replayed, _) = read_wav(&replay);
    assert!(unchanged(recorded, &replayed[..60 * FRAME]), "another run replays the recording");
    assert!(unchanged(recorded, &replayed[60 * FRAME..120 * FRAME]), "and loops it");
}
