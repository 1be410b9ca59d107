//! Game faults on purpose, end to end through the real platform binary writing its sound to a
//! WAV in real time: a good library runs, a faulty variant (game/src/faults.rs) is swapped in
//! under it, then the good library comes back. Each time the platform exits 0, one log line
//! names the fault and the function, the WAV is valid, and the plain 256 Hz sine plays again.
//! Then a SIGKILL in the middle of a run: the WAV on disk is still readable and holds all but
//! the last second of what was written.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Samples per frame per channel at 48 kHz and 60 fps.
const FRAME: usize = 800;
/// Generous: a loaded 2-core machine builds and starts slowly.
const LOG_TIMEOUT: Duration = Duration::from_secs(120);
/// `--game-timeout-ms` for the runs not about the timeout. The watchdog counts the frame
/// thread's CPU time (a starved machine no longer looks like a hang: see
/// `a_stopped_and_continued_platform_does_not_pause_a_healthy_game`); a long one keeps these
/// runs about what they test all the same.
const PATIENT: &str = "10000";
/// The timeout the endless-loop test uses: well above what starvation makes of a healthy call.
const LOOP_TIMEOUT_MS: u64 = 2000;
/// The fades the platform applies around a dip (5 ms), skipped before checking the tone.
const FADE: usize = 240;

fn install(from: &Path, to: &Path) {
    install_library(from, to, 0o755);
}

/// What one run with a swapped-in variant left.
struct Swapped {
    out: Output,
    log: Vec<String>,
    wav: PathBuf,
    _dir: tempfile::TempDir,
}

impl Swapped {
    fn lines(&self, text: &str) -> Vec<&String> {
        self.log.iter().filter(|l| l.contains(text)).collect()
    }

    fn all_log(&self) -> String {
        self.log.join("\n")
    }
}

/// Runs the good game paced, swaps in `variant` once the platform is up, waits for
/// `fault_line` in the log, swaps the good library back, waits for it to load, lets it play a
/// while and stops the platform with SIGTERM (its normal, successful exit).
fn swap_in_and_back(variant: &str, fault_line: &str) -> Swapped {
    let timeout = if variant == "endless-loop" { LOOP_TIMEOUT_MS.to_string() } else { PATIENT.to_string() };
    let good = build_game_variant("");
    let faulty = build_game_variant(variant);
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    install(&good, &live);
    let wav = dir.path().join("out.wav");
    let mut child = spawn_paced(&live, &wav, 0, &["--game-timeout-ms", &timeout]);
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("loaded game library", LOG_TIMEOUT);
    sleep(Duration::from_millis(1200)); // past the 60 warm-up frames
    install(&faulty, &live);
    log.wait_for(fault_line, LOG_TIMEOUT);
    sleep(Duration::from_millis(300));
    install(&good, &live);
    // The next reload is the good library's (the faulty one's `reloaded` line came before).
    log.wait_for("reloaded", LOG_TIMEOUT);
    sleep(Duration::from_millis(1500)); // the good library plays a while
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let log = log.rest().to_vec();
    assert!(out.status.success(), "the platform failed ({}):\n{}", out.status, log.join("\n"));
    Swapped { out, log, wav, _dir: dir }
}

/// The WAV's own sizes against its length on disk: RIFF size = file - 8, and the data chunk
/// ends at or before the end of the file (a killed writer may leave unsized data after it).
/// Returns the data chunk's size in bytes.
fn wav_data_bytes(path: &Path, exact: bool) -> u64 {
    let bytes = fs::read(path).unwrap();
    let file_len = bytes.len() as u64;
    assert!(
        bytes.len() >= 44 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{}: no RIFF/WAVE header",
        path.display()
    );
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
    let riff = u32_at(4);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let (id, size) = (&bytes[at..at + 4], u32_at(at + 4));
        let body = at as u64 + 8;
        if id == b"data" {
            assert!(body + size <= file_len, "data chunk of {size} bytes runs past the file's {file_len}");
            assert_eq!(size % 4, 0, "whole 16-bit stereo frames");
            if exact {
                assert_eq!(body + size, file_len, "data size matches the file length");
                assert_eq!(riff, file_len - 8, "RIFF size matches the file length");
            } else {
                assert_eq!(riff, body + size - 8, "RIFF size matches the data chunk");
            }
            return size;
        }
        at = (body + size + (size & 1)) as usize;
    }
    panic!("{}: no data chunk", path.display());
}

/// Indices where `samples` stop obeying the sine recurrence (a click, a jump, a dip's edge),
/// the same test `ToneChecker` makes, with its 4 LSB threshold.
fn breaks(samples: &[f64]) -> Vec<usize> {
    let two_cos_w = 2.0 * (std::f64::consts::TAU * TONE_HZ / RATE).cos();
    (2..samples.len())
        .filter(|&n| (samples[n] + samples[n - 2] - two_cos_w * samples[n - 1]).abs() * 32768.0 > 4.0)
        .collect()
}

/// Groups break indices less than two frames apart: one dip (fade out, silence, fade in) is
/// one group. Returns (first, last) of each.
fn break_groups(breaks: &[usize]) -> Vec<(usize, usize)> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &b in breaks {
        match groups.last_mut() {
            Some(g) if b - g.1 < 2 * FRAME => g.1 = b,
            _ => groups.push((b, b)),
        }
    }
    groups
}

/// The sound of a run: a valid WAV, the same on both channels, the plain sine before the
/// swap; returns the left channel and its break groups for the variant's own checks.
fn checked_sound(run: &Swapped) -> (Vec<f64>, Vec<(usize, usize)>) {
    let data = wav_data_bytes(&run.wav, true);
    let wav = Wav::open(&run.wav).unwrap_or_else(|e| panic!("hound cannot read it: {e}"));
    assert_eq!((wav.rate, wav.channels), (48_000, 2));
    assert_eq!(wav.samples.len() as u64 * 2, data, "hound reads every sample the header declares");
    let frames = stat_u64(&run.out.stdout, "frames") as usize;
    assert_eq!(wav.samples.len(), frames * FRAME * 2, "rate/fps frames for each frame run");
    let (left, right) = read_wav(&run.wav);
    assert_eq!(left, right, "a centred tone");
    let groups = break_groups(&breaks(&left));
    eprintln!("{} samples; breaks at {groups:?}", left.len());
    (left, groups)
}

/// The tail after the last break: at least a quarter second of the plain 256 Hz sine at the
/// default amplitude, fully faded in, with no discontinuity.
fn assert_plain_sine_tail(left: &[f64], groups: &[(usize, usize)]) {
    let start = groups.last().map_or(0, |g| g.1 + FADE);
    let tail = &left[start.min(left.len())..];
    assert!(tail.len() >= 12_000, "only {} samples after the last break at {start}", tail.len());
    let report = check_tone(tail, TONE_HZ, RATE);
    assert_eq!(report.discontinuities, 0, "{report:?}");
    assert!((report.frequency_hz - TONE_HZ).abs() < 0.5, "{report:?}");
    assert!((report.peak - DEFAULT_AMPLITUDE).abs() < 0.002, "{report:?}");
    assert_eq!(report.longest_silence, 1, "{report:?}"); // a sine touches zero, never stays there
}

/// A fault in a freshly swapped-in library: one line naming it and the function, a rollback to
/// the previous library, and the good library loaded again once its file changes.
fn assert_rolled_back(run: &Swapped, function: &str, what: &str) -> (Vec<f64>, Vec<(usize, usize)>) {
    let log = run.all_log();
    let faults: Vec<&String> = run.lines(function).into_iter().filter(|l| l.contains("rolled back")).collect();
    assert_eq!(faults.len(), 1, "{log}");
    assert!(faults[0].contains(what), "{}", faults[0]);
    assert!(faults[0].contains("rolled back to the previous library and its state"), "{}", faults[0]);
    assert_eq!(run.lines("game crashed").len() + run.lines("(--game-timeout-ms)").len(), 1, "{log}");
    let stdout = &run.out.stdout;
    assert_eq!(stat_u64(stdout, "game_faults"), 1, "{log}");
    assert_eq!(stat_u64(stdout, "game_panics"), 0, "{log}");
    assert_eq!(stat_u64(stdout, "rollbacks"), 1, "{log}");
    assert_eq!(stat_u64(stdout, "reloads"), 2, "the faulty library, then the good one: {log}");
    assert_eq!(stat_u64(stdout, "reload_failures"), 0, "{log}");
    // The faulty copy is unmapped; the good one may still keep its predecessor for rollback
    // (for 60 frames after its swap): 1 or 2, never 3.
    let mapped = stat_u64(stdout, "game_libs_mapped");
    assert!((1..=2).contains(&mapped), "game_libs_mapped={mapped}: {log}");
    checked_sound(run)
}

/// A fault in `game_update_and_render` on the first call: the snapshot taken just before the
/// swap is the state of this very frame, and `game_output_sound` runs the old code on it, so
/// the sine goes on without a break at all.
fn assert_update_fault_leaves_the_sine_whole(run: &Swapped, what: &str) {
    let (left, groups) = assert_rolled_back(run, "game_update_and_render", what);
    assert!(groups.is_empty(), "the sound broke at {groups:?}\n{}", run.all_log());
    assert_plain_sine_tail(&left, &groups);
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0, "one continuous sine from sample 0");
}

#[test]
fn a_null_write_in_update_is_rolled_back() {
    let run = swap_in_and_back("null-write", "rolled back");
    assert_update_fault_leaves_the_sine_whole(&run, "SIGSEGV (invalid memory access) at address 0x0");
}

#[test]
fn a_stack_overflow_in_update_is_rolled_back() {
    let run = swap_in_and_back("stack-overflow", "rolled back");
    assert_update_fault_leaves_the_sine_whole(
        &run,
        "game crashed in game_update_and_render: stack overflow at address 0x",
    );
}

#[test]
fn an_endless_loop_in_update_is_interrupted_and_rolled_back() {
    let run = swap_in_and_back("endless-loop", "rolled back");
    assert_update_fault_leaves_the_sine_whole(&run, "(--game-timeout-ms): interrupted");
    let line = &run.lines("(--game-timeout-ms)")[0];
    let ms: u64 = line.split("ran for ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(ms >= LOOP_TIMEOUT_MS, "interrupted only after --game-timeout-ms {LOOP_TIMEOUT_MS}: {line}");
}

#[test]
fn an_abort_in_update_is_rolled_back() {
    let run = swap_in_and_back("abort", "rolled back");
    assert_update_fault_leaves_the_sine_whole(&run, "game crashed in game_update_and_render: SIGABRT");
}

/// A fault in `game_output_sound`: that frame's sound ramps to silence, the old code resumes
/// from the pre-swap snapshot (one frame back in time) and fades in: one dip, then the sine.
#[test]
fn a_null_write_in_sound_dips_and_the_sine_returns() {
    let run = swap_in_and_back("fault-sound", "rolled back");
    let (left, groups) =
        assert_rolled_back(&run, "game_output_sound", "SIGSEGV (invalid memory access) at address 0x0");
    assert_eq!(groups.len(), 1, "one dip: {groups:?}\n{}", run.all_log());
    let (from, to) = groups[0];
    assert!(to - from <= 3 * FRAME, "a dip of about a frame, not a gap: {from}..{to}");
    let dip = &left[from..=to];
    assert!(dip.contains(&0.0), "it dips to silence");
    assert!(max_error_steps(&left[..from], |_| DEFAULT_AMPLITUDE) <= 1.0, "the sine before the fault");
    assert_plain_sine_tail(&left, &groups);
}

/// `state-grow` has another state shape and migrates the default one: the sine goes on
/// sample-exactly through the swap. The default library coming back cannot migrate the grown
/// shape (it knows only its own and v1): that state starts afresh, one dip, then the sine.
#[test]
fn a_state_that_changed_shape_is_migrated() {
    let run = swap_in_and_back("state-grow", "changed shape");
    let log = run.all_log();
    let shapes = run.lines("game state changed shape");
    assert_eq!(shapes.len(), 2, "in, and back: {log}");
    assert!(shapes[0].contains("migrated by game_migrate_state"), "{}", shapes[0]);
    let grow = |line: &str| -> (u64, u64) {
        let sizes = line.split('(').nth(1).unwrap().split(" bytes").next().unwrap().replace(',', "");
        let (a, b) = sizes.split_once(" -> ").unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let (old, new) = grow(shapes[0]);
    assert_eq!(new, old + 8, "one u64 more: {}", shapes[0]);
    assert!(shapes[1].contains("does not know the old shape; the state starts afresh"), "{}", shapes[1]);
    assert_eq!(grow(shapes[1]), (new, old), "{}", shapes[1]);
    assert_eq!(stat_u64(&run.out.stdout, "reloads"), 2, "{log}");
    assert_eq!(stat_u64(&run.out.stdout, "game_faults") + stat_u64(&run.out.stdout, "rollbacks"), 0, "{log}");
    let (left, groups) = checked_sound(&run);
    // Each reload of another shape dips over 5 ms (the platform cannot tell a migrated state
    // from a fresh one before the game runs on it). The migrated state kept the tone's phase:
    // around the first dip the sine is the one that started at sample 0.
    assert_eq!(groups.len(), 2, "a dip at each shape change: {groups:?}\n{log}");
    let before_back = &left[..groups[1].0];
    let outside_dip = |n: usize| !(groups[0].0..=groups[0].1 + FADE).contains(&n);
    let off = before_back
        .iter()
        .enumerate()
        .filter(|&(n, _)| outside_dip(n))
        .map(|(n, &s)| ((s - DEFAULT_AMPLITUDE * ideal_tone(n)) * 32767.0).abs())
        .fold(0.0, f64::max);
    assert!(off <= 1.0, "the migrated sine kept its phase ({off} steps off)");
    // On the way back the state restarts: the tone begins again at phase 0 on a frame boundary.
    let back = restart_frame(&left, groups[1], left.len()).expect("the tone restarts at phase 0 on the way back");
    eprintln!("restarted at sample {back}");
    assert_plain_sine_tail(&left, &groups);
}

/// The frame boundary near a dip at which a fresh tone (phase 0) starts that matches
/// `left[dip end + FADE .. until]` within one step, if any.
fn restart_frame(left: &[f64], (from, to): (usize, usize), until: usize) -> Option<usize> {
    let first = (from / FRAME).saturating_sub(1) * FRAME;
    (first..=to).step_by(FRAME).find(|&start| {
        left[to + FADE..until]
            .iter()
            .enumerate()
            .all(|(i, &s)| ((s - DEFAULT_AMPLITUDE * ideal_tone(to + FADE + i - start)) * 32767.0).abs() <= 1.0)
    })
}

/// `state-grow-no-migrate` exports no `game_migrate_state`: its state starts afresh (a dip, and
/// the tone starts again from phase 0), and so does the default's on the way back.
#[test]
fn a_state_that_changed_shape_without_a_migration_starts_afresh() {
    let run = swap_in_and_back("state-grow-no-migrate", "changed shape");
    let log = run.all_log();
    let shapes = run.lines("game state changed shape");
    assert_eq!(shapes.len(), 2, "in, and back: {log}");
    assert!(shapes[0].contains("the game exports no game_migrate_state; the state starts afresh"), "{}", shapes[0]);
    assert!(shapes[1].contains("does not know the old shape; the state starts afresh"), "{}", shapes[1]);
    assert_eq!(stat_u64(&run.out.stdout, "reloads"), 2, "{log}");
    let (left, groups) = checked_sound(&run);
    assert_eq!(groups.len(), 2, "a dip at each fresh start: {groups:?}\n{log}");
    assert!(max_error_steps(&left[..groups[0].0], |_| DEFAULT_AMPLITUDE) <= 1.0, "the sine before the swap");
    // Between the dips the variant's own fresh state: the sine again, from phase 0 at a frame
    // boundary (not the old phase: nothing was carried over), and again on the way back.
    let middle = &left[groups[0].1 + FADE..groups[1].0];
    let report = check_tone(middle, TONE_HZ, RATE);
    assert_eq!(report.discontinuities, 0, "{report:?}");
    assert!((report.peak - DEFAULT_AMPLITUDE).abs() < 0.002, "{report:?}");
    let fresh = restart_frame(&left, groups[0], groups[1].0).expect("the variant's tone starts at phase 0");
    // Phase 0 at a multiple of 6,000 samples (two 256 Hz periods, 7.5 frames) is also the old
    // phase; anywhere else the old, continuous sine must not fit.
    if fresh % 6_000 != 0 {
        let off = middle
            .iter()
            .enumerate()
            .map(|(i, &s)| ((s - DEFAULT_AMPLITUDE * ideal_tone(groups[0].1 + FADE + i)) * 32767.0).abs())
            .fold(0.0, f64::max);
        assert!(off > 100.0, "nothing carried over, yet the old phase fits ({off} steps off)");
    }
    restart_frame(&left, groups[1], left.len()).expect("the default's tone restarts at phase 0 on the way back");
    assert_plain_sine_tail(&left, &groups);
}

/// SIGKILL gives the platform no chance to finish the WAV: the sizes rewritten once a second
/// must leave a readable file holding all but at most the last ~1.1 s of what was written.
/// A game that starts a thread of its own (an asset loader, with `pthread_create`) which
/// keeps running the library's code: unmapping that library 60 frames after it is swapped out
/// was a SIGSEGV. It stays mapped, said once, and the sound goes on.
#[test]
fn a_loader_thread_keeps_its_library_mapped() {
    let run = swap_in_and_back("loader-thread", "reloaded");
    let log = run.all_log();
    let kept = run.lines("an old game library stays mapped");
    assert_eq!(kept.len(), 1, "{log}");
    let stdout = &run.out.stdout;
    assert_eq!(stat_u64(stdout, "game_faults"), 0, "{log}");
    assert_eq!(stat_u64(stdout, "reloads"), 2, "{log}");
    // The good library, and the loader's, kept: 2 (3 within 60 frames of the last swap).
    let mapped = stat_u64(stdout, "game_libs_mapped");
    assert!((2..=3).contains(&mapped), "game_libs_mapped={mapped}: {log}");
    let (left, groups) = checked_sound(&run);
    assert!(groups.is_empty(), "the sound broke at {groups:?}\n{log}");
    assert_plain_sine_tail(&left, &groups);
}

#[test]
fn a_wav_survives_sigkill_minus_at_most_its_last_second() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let mut child = spawn_paced(&game, &wav, 0, &["--game-timeout-ms", PATIENT]);
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("loaded game library", LOG_TIMEOUT);
    let started = Instant::now();
    sleep(Duration::from_secs(3));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    assert!(!status.success(), "killed: {status}");
    let log = log.rest().join("\n");

    let declared = wav_data_bytes(&wav, false);
    let on_disk = fs::metadata(&wav).unwrap().len() - 44;
    let per_second = 48_000 * 4;
    // What reached the file is at most what the header declares plus ~1.1 s (one second
    // between rewrites, plus the writer's buffer).
    assert!(
        on_disk <= declared + per_second * 11 / 10,
        "the header declares {declared} bytes but {on_disk} were written"
    );
    // It really rewrote them while running: 3 s of paced frames, a second of them at least.
    assert!(declared >= per_second, "only {declared} bytes declared after {elapsed:?}");
    assert!(declared <= per_second * (elapsed.as_millis() as u64 + 2000) / 1000, "more than real time: {declared}");
    assert_eq!(declared % (FRAME as u64 * 4), 0, "whole frames of rate/fps samples");
    let read = Wav::open(&wav).unwrap_or_else(|e| panic!("hound cannot read it: {e}"));
    assert_eq!(read.samples.len() as u64 * 2, declared);
    let (left, right) = read_wav(&wav);
    assert_eq!(left, right, "{log}");
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0, "every declared sample is the sine:\n{log}");
}

/// Product bug (found by this file): the watchdog measures a call's wall time, so a process
/// that is stopped (Ctrl-Z then `fg`, a debugger, SIGSTOP) or starved of CPU while the game is
/// in a call comes back to a timeout, and a healthy game is paused until the next build.
/// Unpaced, the frame thread is in a game call most of the time: ten stops of 0.6 s hit one.
#[test]
fn a_stopped_and_continued_platform_does_not_pause_a_healthy_game() {
    let game = build_game_variant("");
    let mut child = Command::new(platform_binary())
        .args(["--headless", "--audio", "none", "--stats", "--no-rebuild", "--game-lib"])
        .arg(&game)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("loaded game library", LOG_TIMEOUT);
    sleep(Duration::from_millis(1000));
    let pid = child.id().to_string();
    for _ in 0..10 {
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        sleep(Duration::from_millis(600));
        assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
        sleep(Duration::from_millis(200));
    }
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let log = log.rest().join("\n");
    assert!(out.status.success(), "{log}");
    assert_eq!(stat_u64(&out.stdout, "game_faults"), 0, "a healthy game was interrupted:\n{log}");
}
