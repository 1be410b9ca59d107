//! Issue 16 and 17, reproduced: each fault the platform now handles, run against the real
//! binary. A FIFO, a directory, a truncated file, an unsafe path or another user's file where
//! the game library goes; a FIFO or `/dev/zero` as the loop sample; a game that reports no
//! high-water mark under forced reloads; a key held across a live loop; a full disk for the
//! WAV; an unwritable sync dump; nonsense latencies; the first live-loop seam; a recording
//! played and named as the recording target; a missing game source; links in the docs.
//! Each checks counts, bytes and log lines, never timings; waits are generous timeouts.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

const FRAME: usize = 800;
/// Generous: the machine is shared and loaded.
const TIMEOUT: Duration = Duration::from_secs(120);
/// `--game-timeout-ms` for every run here: the watchdog measures wall time, so on a CPU-starved
/// machine a healthy call can pass the default 250 ms and be interrupted (a product bug
/// game_faults.rs found); these tests are about other faults.
const PATIENT: &str = "10000";
/// What "hangs" means for a run that should end at once.
const HANG: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    // SAFETY: `geteuid` cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The platform binary with `args`, logging at `info`, its output piped.
fn platform(args: &[&str]) -> Command {
    let mut cmd = Command::new(platform_binary());
    cmd.args(args)
        .args(["--game-timeout-ms", PATIENT])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to the end; a run still going after `HANG` is killed and the test fails.
fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd.spawn().expect("spawn handmade");
    let deadline = Instant::now() + HANG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("hung for {HANG:?}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The one line a failed start-up prints (`handmade: ...`).
fn the_error_line(out: &Output) -> String {
    let stderr = stderr_of(out);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("handmade:")).collect();
    assert_eq!(errors.len(), 1, "one line of error:\n{stderr}");
    errors[0].to_string()
}

fn install(from: &Path, to: &Path) {
    install_library(from, to, 0o755);
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A short headless run of the good game, with `extra` flags.
fn short_run(game: &Path, frames: u32, extra: &[&str]) -> Output {
    let frames = frames.to_string();
    let mut args = vec!["--headless", "--no-rebuild", "--stats", "--frames", &frames, "--game-lib", s(game)];
    args.extend_from_slice(extra);
    run_bounded(&mut platform(&args))
}

// ---- 16.1: FIFOs and directories where files go ------------------------------------------

#[test]
fn a_fifo_or_a_directory_as_the_game_library_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("libgame.so");
    mkfifo(&fifo);
    let out = run_bounded(&mut platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "5",
        "--no-rebuild",
        "--game-lib",
        s(&fifo),
    ]));
    assert!(!out.status.success(), "refused");
    let line = the_error_line(&out);
    assert!(line.contains("is a FIFO, not a file") && line.contains(s(&fifo)), "{line}");

    let out = run_bounded(&mut platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "5",
        "--no-rebuild",
        "--game-lib",
        s(dir.path()),
    ]));
    assert!(!out.status.success(), "refused");
    let line = the_error_line(&out);
    assert!(line.contains("is a directory"), "{line}");
}

#[test]
fn a_fifo_swapped_in_as_the_library_mid_run_is_refused_and_sigterm_still_stops_the_platform() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    install(&game, &live);
    let wav = dir.path().join("out.wav");
    let mut child = spawn_paced(&live, &wav, 0, &["--game-timeout-ms", PATIENT]);
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("loaded game library", TIMEOUT);
    sleep(Duration::from_millis(500));
    let staged = dir.path().join("fifo.staged");
    mkfifo(&staged);
    fs::rename(&staged, &live).unwrap();
    log.wait_for("is a FIFO, not a file", TIMEOUT);
    sleep(Duration::from_millis(500)); // many more polls of the same FIFO
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = log.rest().join("\n");
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(count(&stderr, "is a FIFO, not a file"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 0, "{stderr}");
    let frames = stat_u64(&out.stdout, "frames") as usize;
    let (left, right) = read_wav(&wav);
    assert_eq!(left.len(), frames * FRAME);
    assert_eq!(left, right);
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0, "the old code played on unbroken");
}

#[test]
fn a_fifo_as_the_loop_sample_does_not_block_start_up() {
    let game = build_game_variant("");
    let data = tempfile::tempdir().unwrap();
    mkfifo(&data.path().join("loop.wav"));
    let out = short_run(&game, 10, &["--audio", "none", "--data-dir", s(data.path())]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "loop.wav"), 1, "{stderr}");
    assert!(stderr.contains("it is a FIFO, not a WAV file; the demo runs without its loop sound"), "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "frames"), 10);
}

// ---- 16.5: a truncated library --------------------------------------------------------------

/// What a run with a half library swapped in (after the warm-up) left: its output and log.
fn run_with_a_truncated_library_swapped_in() -> (Output, String) {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let live = dir.path().join("libgame.so");
    install(&game, &live);
    let wav = dir.path().join("out.wav");
    let mut cmd = platform(&["--headless", "--realtime", "--audio", "wav", "--stats", "--no-rebuild", "--frames", "0"]);
    cmd.args(["--game-lib", s(&live), "--wav-out", s(&wav)]).env("TMPDIR", &tmp);
    let mut child = cmd.spawn().unwrap();
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("loaded game library", TIMEOUT);
    let private = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("handmade-game-"))
        .expect("the private copy directory");
    sleep(Duration::from_millis(3000)); // well past the 60 warm-up frames
    let bytes = fs::read(&game).unwrap();
    let staged = dir.path().join("half.staged");
    fs::write(&staged, &bytes[..bytes.len() / 2]).unwrap();
    fs::rename(&staged, &live).unwrap();
    log.wait_for("is incomplete", TIMEOUT);
    sleep(Duration::from_millis(1000)); // ~60 more polls of the same half file
    let copies: Vec<PathBuf> = fs::read_dir(&private).unwrap().flatten().map(|e| e.path()).collect();
    assert!(copies.is_empty(), "the half library was copied: {copies:?}");
    install(&game, &live); // the build finishes
    log.wait_for("reloaded", TIMEOUT);
    sleep(Duration::from_millis(300));
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = log.rest().join("\n");
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(fs::read_dir(&private).map(|d| d.count()).unwrap_or(0), 0, "copies are removed once mapped");
    (out, stderr)
}

#[test]
fn a_truncated_library_is_waited_for_without_filling_the_private_directory() {
    let (out, stderr) = run_with_a_truncated_library_swapped_in();
    assert_eq!(count(&stderr, "is incomplete"), 1, "said once: {stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{stderr}");
}

/// Product bug (found by this test): the frame that finds the library incomplete returns
/// `ReloadOutcome::Unchanged` (reload/mod.rs `fail`), so it counts as a normal frame, yet its
/// path checks and its log line allocate (7-8 allocations).
#[test]
fn a_truncated_library_allocates_nothing_in_normal_frames() {
    let (out, stderr) = run_with_a_truncated_library_swapped_in();
    assert_eq!(stat_u64(&out.stdout, "heap_allocs_after_warmup"), 0, "{stderr}");
}

// ---- 16.7: libraries other users could change ----------------------------------------------

fn refused_at_start_up(library: &Path, expected: &[&str]) {
    let out = run_bounded(&mut platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "5",
        "--no-rebuild",
        "--game-lib",
        s(library),
    ]));
    assert!(!out.status.success(), "refused: {}", stderr_of(&out));
    let line = the_error_line(&out);
    for text in expected {
        assert!(line.contains(text), "`{text}` in: {line}");
    }
}

#[test]
fn a_symlink_into_a_world_writable_directory_is_refused() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    install(&game, &open.join("libgame.so"));
    let link = dir.path().join("libgame.so");
    std::os::unix::fs::symlink(open.join("libgame.so"), &link).unwrap();
    refused_at_start_up(&link, &["refusing", "open", "writable by other users (mode 777)"]);
}

#[test]
fn a_library_below_a_world_writable_directory_is_refused() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let (open, inner) = (dir.path().join("open"), dir.path().join("open/inner"));
    fs::create_dir_all(&inner).unwrap();
    fs::set_permissions(&inner, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let library = inner.join("libgame.so");
    install(&game, &library);
    refused_at_start_up(&library, &[&format!("refusing {}:", open.display()), "mode 777"]);
}

#[test]
fn a_library_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: only root can give a file to uid 65534");
        return;
    }
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libgame.so");
    install(&game, &library);
    std::os::unix::fs::chown(&library, Some(65534), None).unwrap();
    refused_at_start_up(&library, &["belongs to another user (uid 65534)"]);
}

// ---- 16.8: a game that reports no high-water mark, reloaded every 30 frames ---------------------

/// A C game that keeps a counter in the first pages of permanent storage and never sets
/// `game_arena_high_water`: the platform cannot know how much of the 64 MiB it uses.
fn c_game_without_high_water(dir: &Path) -> PathBuf {
    let info = handmade_api::GAME_API_INFO;
    let source = format!(
        "#include <stdint.h>\n\
         struct info {{ uint32_t version; uint64_t layout_hash; }};\n\
         struct info game_api_version(void) {{ struct info i = {{ {}u, {}ull }}; return i; }}\n\
         int game_update_and_render(void **memory, const void *input, void *buffer) {{\n\
             uint64_t *state = (uint64_t *)memory[0];\n\
             state[0] += 1; state[1024] = state[0]; state[2048] = state[0];\n\
             return 0;\n\
         }}\n\
         int game_output_sound(void **memory, void *sound) {{ return 0; }}\n",
        info.version, info.layout_hash
    );
    build_c_library(dir, "cgame", &source)
}

#[test]
fn reloads_of_a_game_without_a_high_water_mark_do_not_back_its_whole_storage() {
    let dir = tempfile::tempdir().unwrap();
    let game = c_game_without_high_water(dir.path());
    let out = short_run(&game, 300, &["--audio", "none", "--reload-every", "30", "--permanent-mib", "64"]);
    let stderr = expect_success(&out);
    assert_eq!(stat_u64(&out.stdout, "reloads"), 9, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{stderr}");
    let resident: f64 = stat(&out.stdout, "resident_mib").parse().unwrap();
    // A snapshot of the whole 64 MiB would back 64 MiB more; the game touched three pages.
    assert!(resident < 40.0, "resident {resident} MiB after 9 reload snapshots\n{stderr}");
}

// ---- 16.9: a key held across the live loop is not left stuck ---------------------------------

/// The script: record from frame 5 while `right` is held from 7 to 25, loop it from
/// 45, stop at 50. The replay moved the player right for two frames (the recording's frames 7
/// and 8) before `l` stopped it; after that, `right` is up: the player stays where it is. (It
/// is not back at the centre: the replay's state is kept, and that is the honest result.)
#[test]
fn a_key_held_while_recording_is_not_stuck_after_the_loop_stops() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("input.txt");
    fs::write(&script, "5 l down\n6 l up\n7 right down\n25 right up\n45 l down\n46 l up\n50 l down\n51 l up\n")
        .unwrap();
    let wav = dir.path().join("out.wav");
    let loop_file = dir.path().join("loop.hml");
    let out = short_run(
        &game,
        240,
        &["--audio", "wav", "--wav-out", s(&wav), "--input-script", s(&script), "--loop-file", s(&loop_file)],
    );
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "live loop: Off"), 1, "{stderr}");
    let wav = Wav::open(&wav).unwrap();
    let (left, right) = (wav.channel(0), wav.channel(1));
    let peak =
        |c: &[i16], frame: usize| c[frame * FRAME..(frame + 1) * FRAME].iter().map(|s| s.unsigned_abs()).max().unwrap();
    // A stuck `right` moves the player 0.4 screen widths a second: hard right within 80 frames.
    let settled = (60..240).map(|f| (peak(&left, f), peak(&right, f))).collect::<Vec<_>>();
    assert!(
        settled.windows(2).all(|w| w[0] == w[1]),
        "the pan still moves after the loop stopped: {settled:?}\n{stderr}"
    );
    // Where two frames of `right` leave the player: x = 0.5 + 2 * 0.4 / 60, constant power.
    let x = 0.5 + 2.0 * 0.4 / 60.0;
    let angle = x * std::f64::consts::FRAC_PI_2;
    let expected = [angle.cos(), angle.sin()].map(|g| g * std::f64::consts::SQRT_2 * DEFAULT_AMPLITUDE * 32767.0);
    let (l, r) = settled[0];
    assert!(
        (f64::from(l) - expected[0]).abs() < 30.0 && (f64::from(r) - expected[1]).abs() < 30.0,
        "peaks {l}, {r}; expected {expected:?}\n{stderr}"
    );
}

// ---- 16.11: failures at exit are each one line, and the other steps still run --------------------

#[test]
fn a_full_disk_for_the_wav_still_writes_the_screenshot_and_the_stats() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ok.png");
    let out = short_run(&game, 120, &["--audio", "wav", "--wav-out", "/dev/full", "--screenshot", s(&png)]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "frames"), 120, "ran to the end: {stderr}");
    assert!(fs::read(&png).unwrap().starts_with(b"\x89PNG"), "the screenshot was written");
    // Said once while running (the game goes on without sound), once when the file could not be
    // finished at exit: never once per frame.
    assert_eq!(count(&stderr, "/dev/full"), 2, "{stderr}");
    assert_eq!(count(&stderr, "the game keeps running without sound output"), 1, "{stderr}");
    assert_eq!(count(&stderr, "No space left on device"), 2, "{stderr}");
}

/// Found by this test: once the WAV writes failed, every frame's failed write allocated (its
/// error message was built again each frame, though said once). The one frame that fails and
/// says so is an event, counted apart.
#[test]
fn a_full_disk_for_the_wav_allocates_nothing_in_the_sound_path() {
    let game = build_game_variant("");
    let out = short_run(&game, 120, &["--audio", "wav", "--wav-out", "/dev/full"]);
    assert_eq!(stat_u64(&out.stdout, "sound_heap_allocs"), 0, "{}", stderr_of(&out));
    assert_eq!(stat_u64(&out.stdout, "heap_allocs_after_warmup"), 0, "{}", stderr_of(&out));
}

#[test]
fn an_unwritable_sync_dump_still_writes_the_screenshot() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ok.png");
    let dump = dir.path().join("no/such/dir/sync.txt");
    let out = short_run(&game, 10, &["--audio", "none", "--sync-dump", s(&dump), "--screenshot", s(&png)]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(fs::read(&png).unwrap().starts_with(b"\x89PNG"), "the screenshot was written");
    assert_eq!(count(&stderr, "sync.txt"), 1, "{stderr}");
    assert!(stderr.contains(&format!("cannot write {}", dump.display())), "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "frames"), 10, "the stats line is still printed");
}

// ---- 16.12: /dev/zero as the loop sample ------------------------------------------------------

#[test]
fn dev_zero_as_the_loop_sample_does_not_eat_memory() {
    let game = build_game_variant("");
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", data.path().join("loop.wav")).unwrap();
    let out = short_run(&game, 10, &["--audio", "none", "--data-dir", s(data.path())]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "loop.wav"), 1, "{stderr}");
    assert!(stderr.contains("is a device, not a WAV file; the demo runs without its loop sound"), "{stderr}");
    let resident: f64 = stat(&out.stdout, "resident_mib").parse().unwrap();
    assert!(resident < 40.0, "resident {resident} MiB");
}

// ---- 16.13: latencies out of range ------------------------------------------------------------

#[test]
fn a_latency_out_of_range_is_one_line_and_exit_2() {
    for bad in ["-5", "NaN", "100000", "0"] {
        let flag = format!("--latency-ms={bad}");
        let out =
            run_bounded(&mut platform(&[&flag, "--headless", "--audio", "none", "--frames", "1", "--no-rebuild"]));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr_of(&out));
        let line = the_error_line(&out);
        assert!(line.contains("--latency-ms must be between 1 and 1000"), "{bad}: {line}");
        assert_eq!(stderr_of(&out).lines().count(), 1, "nothing else: {}", stderr_of(&out));
    }
}

// ---- 17.3: live loop seams and files -----------------------------------------------------------

/// Largest step of a 0.25 sine at 256 Hz (0.0084) plus a 5 ms fade's own slope.
const MAX_SMOOTH_STEP: i32 = (0.0095 * 32767.0) as i32;

#[test]
fn the_first_live_loop_seam_does_not_click() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("input.txt");
    fs::write(&script, "30 l down\n31 l up\n90 l down\n91 l up\n").unwrap();
    let wav = dir.path().join("out.wav");
    let loop_file = dir.path().join("loop.hml");
    let out = short_run(
        &game,
        200,
        &["--audio", "wav", "--wav-out", s(&wav), "--input-script", s(&script), "--loop-file", s(&loop_file)],
    );
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "live loop: playing 60 recorded frames"), 1, "{stderr}");
    let left = Wav::open(&wav).unwrap().channel(0);
    let steps: Vec<i32> = left.windows(2).map(|w| (i32::from(w[1]) - i32::from(w[0])).abs()).collect();
    let around = &steps[85 * FRAME..100 * FRAME];
    let (at, step) = around.iter().enumerate().max_by_key(|(_, &s)| s).map(|(i, &s)| (85 * FRAME + i, s)).unwrap();
    assert!(step <= MAX_SMOOTH_STEP, "a click of {step} steps at sample {at} (frame {}):\n{stderr}", at / FRAME);
    // The whole run, every later seam included.
    let late = steps.iter().position(|&s| s > MAX_SMOOTH_STEP);
    assert!(late.is_none(), "a click after the first seam at sample {late:?}:\n{stderr}");
}

#[test]
fn exiting_while_recording_does_not_say_it_plays() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("input.txt");
    fs::write(&script, "10 l down\n11 l up\n").unwrap();
    let loop_file = dir.path().join("loop.hml");
    let out = short_run(&game, 40, &["--audio", "none", "--input-script", s(&script), "--loop-file", s(&loop_file)]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "live loop: Recording"), 1, "{stderr}");
    assert_eq!(count(&stderr, "playing"), 0, "{stderr}");
    handmade::check_recording(&fs::read(&loop_file).unwrap(), 64 << 20).expect("a complete recording");
}

/// `setarch -R` turns address randomisation off, so a recording made in one run is accepted by
/// the next (its memory is at the same address): then `--play-loop X --loop-file X` plays X
/// and records elsewhere.
#[test]
fn playing_a_recording_named_as_the_loop_file_leaves_it_unchanged() {
    if Command::new("setarch").args(["-R", "true"]).status().map(|s| !s.success()).unwrap_or(true) {
        eprintln!("skipped: setarch -R is not available here");
        return;
    }
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let (record, toggle) = (dir.path().join("record.txt"), dir.path().join("toggle.txt"));
    fs::write(&record, "10 l down\n11 l up\n").unwrap();
    fs::write(&toggle, "5 l down\n6 l up\n20 l down\n21 l up\n40 l down\n41 l up\n").unwrap();
    let loop_file = dir.path().join("x.hml");
    let run = |script: &Path, extra: &[&str]| {
        let mut cmd = Command::new("setarch");
        cmd.args(["-R"]).arg(platform_binary()).args(["--game-timeout-ms", PATIENT]);
        cmd.args(["--headless", "--audio", "none", "--frames", "60", "--no-rebuild", "--game-lib", s(&game)]);
        cmd.args(["--input-script", s(script), "--loop-file", s(&loop_file)]).args(extra);
        cmd.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped());
        run_bounded(&mut cmd)
    };
    expect_success(&run(&record, &[]));
    let before = fs::read(&loop_file).unwrap();
    let out = run(&toggle, &["--play-loop", s(&loop_file)]);
    let stderr = expect_success(&out);
    if stderr.contains("this run has it at") {
        eprintln!("skipped: the memory block moved even without randomisation:\n{stderr}");
        return;
    }
    assert_eq!(count(&stderr, "--loop-file names the recording being played"), 1, "{stderr}");
    // Playing -> off -> recording (to a private directory) -> playing that.
    assert_eq!(count(&stderr, "live loop: Off"), 1, "{stderr}");
    assert_eq!(count(&stderr, "live loop: recording to /"), 1, "{stderr}");
    assert_eq!(count(&stderr, &format!("recording to {}", loop_file.display())), 0, "{stderr}");
    assert!(fs::read(&loop_file).unwrap() == before, "the recording was overwritten");
}

/// Found by this test: a recording that is refused (here: damaged) falls back to live play,
/// and `l` then recorded over it.
#[test]
fn a_refused_recording_named_as_the_loop_file_is_not_overwritten() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let (record, toggle) = (dir.path().join("record.txt"), dir.path().join("toggle.txt"));
    fs::write(&record, "10 l down\n11 l up\n").unwrap();
    fs::write(&toggle, "5 l down\n6 l up\n20 l down\n21 l up\n").unwrap();
    let loop_file = dir.path().join("x.hml");
    expect_success(&short_run(
        &game,
        40,
        &["--audio", "none", "--input-script", s(&record), "--loop-file", s(&loop_file)],
    ));
    let whole = fs::read(&loop_file).unwrap();
    fs::write(&loop_file, &whole[..whole.len() / 2]).unwrap();
    let before = fs::read(&loop_file).unwrap();
    let out = short_run(
        &game,
        60,
        &["--audio", "none", "--input-script", s(&toggle), "--play-loop", s(&loop_file), "--loop-file", s(&loop_file)],
    );
    let stderr = expect_success(&out);
    assert!(stderr.contains("truncated"), "refused as damaged: {stderr}");
    assert!(fs::read(&loop_file).unwrap() == before, "the refused recording was overwritten:\n{stderr}");
}

// ---- 17.7: --game-src and --realtime ----------------------------------------------------------

#[test]
fn a_missing_game_source_is_one_line() {
    let game = build_game_variant("");
    let out = run_bounded(&mut platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "1",
        "--game-src",
        "/nonexistent",
        "--game-lib",
        s(&game),
    ]));
    assert!(!out.status.success());
    let line = the_error_line(&out);
    assert!(line.contains("--game-src /nonexistent"), "{line}");
}

#[test]
fn realtime_says_the_offline_sound_is_paced() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let out = short_run(&game, 3, &["--realtime", "--audio", "wav", "--wav-out", s(&wav)]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "--realtime: the offline sound is paced by the clock at 60 fps"), 1, "{stderr}");
    let out = short_run(&game, 3, &["--audio", "wav", "--wav-out", s(&wav)]);
    assert_eq!(count(&expect_success(&out), "paced by the clock"), 0, "only with --realtime");
}

// ---- 17.10: the docs' paths exist -------------------------------------------------------------

/// Top-level entries a path in the docs starts with when it names a file of this repository.
const REPO_ROOTS: [&str; 9] =
    ["platform/", "game/", "tests/", "examples/", "benches/", "data/", ".ci/", "build.rs", "Cargo.toml"];

/// Relative link targets (`](path)`) and code spans that look like repository paths.
fn doc_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("").split_whitespace().next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            found.push(target.to_string());
        }
    }
    for (i, span) in text.split('`').enumerate() {
        if i % 2 == 0 || span.contains(' ') || span.contains('*') || span.contains('<') || span.contains('{') {
            continue;
        }
        let span = span.trim_end_matches([',', '.', ':', ';']);
        let span = span.split(':').next().unwrap_or(span); // `file.rs:123`
        if REPO_ROOTS.iter().any(|r| span.starts_with(r)) {
            found.push(span.to_string());
        }
    }
    found
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = workspace();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in ["README.md", "examples/README.md", "examples/COURSE.md"] {
        let text = fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let here = root.join(doc).parent().unwrap().to_path_buf();
        for path in doc_paths(&text) {
            checked += 1;
            // A link is relative to its document; a code span names a path from the root.
            let exists = here.join(&path).exists() || root.join(&path).exists();
            if !exists {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    eprintln!("{checked} paths checked");
    assert!(checked > 20, "the docs name only {checked} paths: is the parser broken?");
    assert!(missing.is_empty(), "{} paths in the docs do not exist:\n{}", missing.len(), missing.join("\n"));
}

#[test]
fn the_doc_path_finder_finds_links_and_code_paths() {
    let text = "see [x](examples/README.md#top) and `platform/guard/mod.rs:90`, not `cargo run` or [w](https://a.b)";
    assert_eq!(doc_paths(text), ["examples/README.md", "platform/guard/mod.rs"]);
}

// ---- 10.1: a recording of another state shape ------------------------------------------------

/// A loop recorded by a game whose state had one shape is never replayed into a game whose
/// state has another: one line, and the run goes on live. The same game plays it.
#[test]
fn a_recording_of_another_state_shape_is_refused() {
    let (game, grown) = (build_game_variant(""), build_game_variant("state-grow"));
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    fs::write(&record, "5 l down\n6 l up\n").unwrap();
    let loop_file = dir.path().join("x.hml");
    expect_success(&short_run(
        &game,
        40,
        &["--audio", "none", "--input-script", s(&record), "--loop-file", s(&loop_file)],
    ));
    let out = short_run(&grown, 20, &["--audio", "none", "--play-loop", s(&loop_file)]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "recorded with the game's state in another shape"), 1, "{stderr}");
    assert_eq!(count(&stderr, "live loop: playing"), 0, "{stderr}");
    let out = short_run(&game, 20, &["--audio", "none", "--play-loop", s(&loop_file)]);
    let stderr = expect_success(&out);
    assert_eq!(count(&stderr, "another shape"), 0, "{stderr}");
    assert_eq!(count(&stderr, "live loop: playing"), 1, "the same game plays it: {stderr}");
}

// ---- 16.7: sources others can change are never built ------------------------------------------

/// The contract crate is compiled into every game, and the game's sources are built at
/// start-up: a 0777 `platform/api/src` or `game/src` stops the start-up build in one line (the
/// watcher refused them before; the first build did not).
#[test]
fn sources_others_can_change_are_not_built_at_start_up() {
    for open in ["platform/api/src", "game/src"] {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("ws");
        copy_workspace(&copy);
        fs::set_permissions(copy.join(open), fs::Permissions::from_mode(0o777)).unwrap();
        let out = run_bounded(&mut platform(&[
            "--headless",
            "--audio",
            "none",
            "--frames",
            "1",
            "--game-src",
            s(&copy.join("game")),
        ]));
        assert!(!out.status.success(), "{open}: refused");
        let line = the_error_line(&out);
        assert!(line.contains("not building the game") && line.contains("writable by other users"), "{open}: {line}");
        assert!(line.contains(open), "{open}: names the directory: {line}");
    }
}

// ---- 17.1: a check the README says is run is never skipped in silence -----------------------------

/// Without rustup (so no way to get Miri), Miri's script fails in one line instead of printing
/// "skipped" and passing; and the test command runs it unconditionally.
#[test]
fn miri_cannot_be_skipped_silently() {
    let out = Command::new("bash")
        .arg(workspace().join(".ci/miri.sh"))
        .env("PATH", "/usr/bin:/bin")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("Miri needs rustup"), "{stderr}");
    let test_sh = fs::read_to_string(workspace().join(".ci/test.sh")).unwrap();
    assert!(test_sh.contains("bash .ci/miri.sh"), "the test command runs Miri");
    let skips = test_sh.lines().any(|l| !l.trim_start().starts_with('#') && l.contains("skipped"));
    assert!(!skips, "and has no path that skips it");
}

/// A platform killed outright cannot remove its private directories (the library copies, the
/// loop recording): the next run removes them, says so once, and leaves a live run's alone.
#[test]
fn private_directories_of_a_killed_run_are_removed_by_the_next_one() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let private = || -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let long_run = || {
        let mut cmd = platform(&["--headless", "--realtime", "--audio", "none", "--no-rebuild", "--frames", "0"]);
        cmd.args(["--game-lib", s(&game)]).env("TMPDIR", &tmp).stdout(Stdio::null());
        // Killed on drop: a failed assertion must not leave a run going forever.
        let mut child = Running::from(cmd.spawn().unwrap());
        let mut log = LogWatcher::new(child.stderr.take().unwrap());
        log.wait_for("loaded game library", TIMEOUT);
        (child, log)
    };
    let (mut killed, _log) = long_run();
    let left = private();
    assert!(left.iter().any(|n| n.starts_with(&format!("handmade-game-{}-", killed.id()))), "{left:?}");
    killed.kill().unwrap(); // SIGKILL: nothing of its own runs on the way out
    killed.wait().unwrap();
    assert_eq!(private(), left, "a killed run leaves its directories");

    let (mut running, running_log) = long_run();
    let said = "removed 1 directory of library copies left by runs that were killed";
    assert_eq!(count(&running_log.seen.join("\n"), said), 1, "{:?}", running_log.seen);
    let theirs = format!("handmade-game-{}-", running.id());
    let now = private();
    let copies_gone = !now.iter().any(|n| n.starts_with("handmade-game-") && left.contains(n));
    assert!(copies_gone, "the killed run's library copies are gone: {now:?}");
    assert!(now.iter().any(|n| n.starts_with(&theirs)), "the new run has its own: {now:?}");
    let out = short_run_in(&game, &tmp);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(count(&stderr, "removed"), 0, "a live run's directories are not touched:\n{stderr}");
    let after = private();
    assert!(after.iter().any(|n| n.starts_with(&theirs)), "a live run's directory stays: {after:?}");
    let pid = format!("-{}-", running.id());
    assert!(after.iter().all(|n| n.contains(&pid)), "nor the killed run's loop, nor the short run's: {after:?}");
    terminate(&running);
    assert!(running.wait().unwrap().success());
    assert!(private().is_empty(), "and a run that ends removes its own: {:?}", private());
}

fn short_run_in(game: &Path, tmp: &Path) -> Output {
    let mut cmd = platform(&["--headless", "--no-rebuild", "--audio", "none", "--frames", "5", "--game-lib", s(game)]);
    run_bounded(cmd.env("TMPDIR", tmp))
}
