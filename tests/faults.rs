//! Faults on purpose: the game library deleted, made unreadable, or unloadable because the
//! private copy directory is unwritable; the disk full when a loop recording starts; SIGTERM in
//! the middle of a recording. Each time the platform keeps running, says what went wrong in one
//! line, and the sound does not break.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::*;

fn is_root() -> bool {
    // SAFETY: `geteuid` cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn install(from: &Path, to: &Path, mode: u32) {
    install_library(from, to, mode);
}

fn assert_unbroken_sine(wav: &Path, frames: usize) {
    let (left, right) = read_wav(wav);
    assert_eq!(left.len(), frames * 800, "the platform kept running to the end");
    assert_eq!(left, right);
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0, "the sound broke");
}

fn count_lines(stderr: &str, text: &str) -> usize {
    stderr.lines().filter(|l| l.contains(text)).count()
}

#[test]
fn a_deleted_library_keeps_the_loaded_code_until_it_is_back() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    install(&game, &live, 0o644);
    let wav = dir.path().join("out.wav");
    let mut child = spawn_paced(&live, &wav, 200, &[]);
    // Frames are running from this line on: a start-up slowed by a busy machine (seen in CI:
    // over 2 s) must not swallow the whole time the file is away.
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("the offline sound is paced", Duration::from_secs(60));
    sleep(Duration::from_millis(500));
    fs::remove_file(&live).unwrap();
    sleep(Duration::from_millis(1200));
    install(&game, &live, 0o644);
    let out = child.wait_with_output().unwrap();
    let stderr = log.rest().join("\n");
    assert!(out.status.success(), "the platform failed ({}):\n{stderr}", out.status);
    assert_eq!(count_lines(&stderr, "is gone"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 1, "loaded again once it was back: {stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{stderr}");
    assert_unbroken_sine(&wav, 200);
}

/// Runs as `nobody` (root ignores permissions), so unreadable files and unwritable
/// directories really are.
#[test]
fn unreadable_library_and_unwritable_copy_directory_are_reported_once() {
    if !is_root() {
        eprintln!("skipped: needs root to run the platform as `nobody`");
        return;
    }
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let live = dir.path().join("libgame.so");
    install(&game, &live, 0o644);
    let wav = dir.path().join("out.wav");
    let chown = Command::new("chown").args(["-R", "65534:65534"]).arg(dir.path()).status().unwrap();
    assert!(chown.success());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(platform_binary())
        .args(["--headless", "--realtime", "--audio", "wav", "--frames", "330", "--stats", "--no-rebuild"])
        .arg("--game-lib")
        .arg(&live)
        .arg("--wav-out")
        .arg(&wav)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(800));
    let private: PathBuf = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("handmade-game-"))
        .expect("the private copy directory");
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o700);

    install(&game, &live, 0o000); // a new build nobody may read
    sleep(Duration::from_millis(700));
    fs::set_permissions(&live, fs::Permissions::from_mode(0o644)).unwrap(); // fixed: loads
    sleep(Duration::from_millis(700));
    fs::set_permissions(&private, fs::Permissions::from_mode(0o500)).unwrap();
    install(&game, &live, 0o644); // cannot be copied
    sleep(Duration::from_millis(700));
    // Fixed: the same build loads on a retry (a transient failure is not a bad library), with
    // no new build needed.
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(count_lines(&stderr, "cannot be read: Permission denied"), 1, "{stderr}");
    assert_eq!(count_lines(&stderr, "cannot copy the game library to the private directory"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 2, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 2, "{stderr}");
    assert_unbroken_sine(&wav, 330);
}

#[test]
fn a_full_disk_when_recording_starts_is_one_line_and_nothing_is_lost() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    fs::create_dir(&full).unwrap();
    let script = dir.path().join("input.txt");
    fs::write(&script, "10 l down\n11 l up\n").unwrap();
    let wav = dir.path().join("out.wav");
    // A 64 KiB tmpfs in a private mount namespace: gone when the platform exits.
    let command = format!(
        "mount -t tmpfs -o size=64k tmpfs '{}' && exec '{}' --headless --audio wav --frames 60 --stats --no-rebuild \
         --game-lib '{}' --wav-out '{}' --input-script '{}' --loop-file '{}/loop.hml'",
        full.display(),
        platform_binary().display(),
        game.display(),
        wav.display(),
        script.display(),
        full.display()
    );
    let mut unshare = Command::new("unshare");
    if !is_root() {
        unshare.arg("--map-root-user");
    }
    let out = unshare.args(["--mount", "--", "sh", "-c", &command]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("mount") && std::env::var_os("CI").is_none() {
        eprintln!("skipped: cannot mount a tmpfs here ({stderr})");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("loop file")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("cannot reserve space") && lines[0].contains("No space left"), "{}", lines[0]);
    assert_unbroken_sine(&wav, 60);
}

#[test]
fn sigterm_while_recording_leaves_a_valid_loop_file_and_wav() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("input.txt");
    fs::write(&script, "10 l down\n11 l up\n").unwrap();
    let wav = dir.path().join("out.wav");
    let loop_file = dir.path().join("loop.hml");
    let (script_arg, loop_arg) = (script.to_str().unwrap(), loop_file.to_str().unwrap());
    let child = spawn_paced(&game, &wav, 6000, &["--input-script", script_arg, "--loop-file", loop_arg]);
    sleep(Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    expect_success(&out);
    let frames = stat_u64(&out.stdout, "frames") as usize;
    assert!(frames > 20 && frames < 6000, "stopped early by the signal: {frames}");
    let bytes = fs::read(&loop_file).unwrap();
    handmade::check_recording(&bytes, 64 << 20).expect("a complete, valid recording");
    assert_unbroken_sine(&wav, frames);
}

/// A valid library whose initialiser crashes or never returns: it passes every header check,
/// so only loading it can tell. The probe process takes the hit.
fn library_with_constructor(dir: &Path, name: &str, body: &str) -> PathBuf {
    build_c_library(dir, name, &format!("__attribute__((constructor)) static void init(void) {{ {body} }}\n"))
}

#[test]
fn libraries_that_crash_or_hang_while_loading_are_refused_and_the_old_code_plays_on() {
    let good = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let crashing = library_with_constructor(dir.path(), "crash", "*(volatile int *)0 = 1;");
    let hanging = library_with_constructor(dir.path(), "hang", "for (;;) {}");

    let out =
        run_platform(&["--headless", "--audio", "none", "--frames", "5", "--game-lib", crashing.to_str().unwrap()]);
    assert!(!out.status.success());
    let errors: Vec<String> = stderr_lines(&out).into_iter().filter(|l| l.starts_with("handmade:")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("crashes while loading (SIGSEGV in a test process)"), "{}", errors[0]);

    let live = dir.path().join("libgame.so");
    install(&good, &live, 0o644);
    let wav = dir.path().join("out.wav");
    let child = spawn_paced(&live, &wav, 480, &[]);
    sleep(Duration::from_millis(1000));
    install(&crashing, &live, 0o644);
    sleep(Duration::from_millis(1000));
    install(&hanging, &live, 0o644);
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(count_lines(&stderr, "crashes while loading (SIGSEGV"), 1, "{stderr}");
    assert_eq!(count_lines(&stderr, "did not finish loading within 5 s"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 2, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), 0, "{stderr}");
    assert_unbroken_sine(&wav, 480);
}

#[test]
fn nan_samples_and_a_nonsense_frame_count_are_silenced_ignored_and_said_once() {
    let game = build_game_variant("bad-sound");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let out = run_platform(&[
        "--headless",
        "--audio",
        "wav",
        "--frames",
        "180",
        "--stats",
        "--no-rebuild",
        "--game-lib",
        game.to_str().unwrap(),
        "--wav-out",
        wav.to_str().unwrap(),
    ]);
    let stderr = expect_success(&out);
    assert_eq!(count_lines(&stderr, "NaN or infinite samples"), 1, "{stderr}");
    assert_eq!(count_lines(&stderr, "changed the frame count to 123456 (asked for 800); ignored"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "nonfinite_samples"), 40, "10 per channel in two frames");
    assert_eq!(stat_u64(&out.stdout, "bad_sample_counts"), 2);
    let (left, right) = read_wav(&wav);
    assert_eq!(left.len(), 180 * 800, "exactly the platform's count was written");
    // The garbage became silence; everything else is the plain tone.
    for frame in [59, 60] {
        assert!(left[frame * 800..frame * 800 + 10].iter().all(|&s| s == 0.0));
        assert!(right[frame * 800..frame * 800 + 10].iter().all(|&s| s == 0.0));
    }
    let clean = |n: usize| !(59 * 800..59 * 800 + 10).contains(&n) && !(60 * 800..60 * 800 + 10).contains(&n);
    let off =
        left.iter().enumerate().filter(|&(n, _)| clean(n)).map(|(n, &s)| ((s - 0.25 * ideal_tone(n)) * 32767.0).abs());
    assert!(off.fold(0.0, f64::max) <= 1.0);
}
