//! The rebuild watcher never waits in silence (issue 15.2), end to end in a temporary copy of
//! the workspace: another process holds cargo's lock on the game's target directory while a
//! save comes in; the build (cargo's, then rustc run directly) says in one line that it waits;
//! two more saves arrive while it waits, and once the lock is released the game is rebuilt and
//! reloaded, with exactly one more build for the two saves; the last save's sound plays.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use common::*;

const ANCHOR: &str = "const AMPLITUDE: f32 = 0.25;";

use save_like_an_editor as save;

/// Holds cargo's lock on `profile_dir` (`flock` on `.cargo-lock`, as cargo takes it) until the
/// file is dropped.
fn hold_cargo_lock(profile_dir: &Path) -> fs::File {
    fs::create_dir_all(profile_dir).unwrap();
    let file =
        fs::OpenOptions::new().write(true).create(true).truncate(false).open(profile_dir.join(".cargo-lock")).unwrap();
    // SAFETY: `file` is an open descriptor for the duration of the call.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) }, 0);
    file
}

fn release(holder: fs::File) {
    drop(holder);
}

#[test]
fn a_build_waiting_on_cargos_lock_says_so_and_saves_meanwhile_make_one_more_build() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    copy_workspace(&ws);
    let target = dir.path().join("target");
    let wav = dir.path().join("out.wav");
    let (child, mut log) = spawn_watching(&ws, &target, &wav, Duration::from_secs(600));
    let profile = if platform_binary().to_string_lossy().contains("/debug/") { "debug" } else { "game-fast" };
    let sound_rs = ws.join("game/src/sound.rs");
    let original = fs::read_to_string(&sound_rs).unwrap();
    assert_eq!(original.matches(ANCHOR).count(), 1, "the edit needs its anchor in game/src/sound.rs");
    let edit = |amplitude: &str| original.replace(ANCHOR, &format!("const AMPLITUDE: f32 = {amplitude};"));

    // The lock is held when the first save comes: cargo builds it (the first build always
    // goes through cargo) and blocks; the watcher says so in one line.
    let holder = hold_cargo_lock(&target.join(profile));
    save(&sound_rs, &edit("0.4"));
    let waiting = log.wait_for("waits for another cargo", Duration::from_secs(60));
    println!("{waiting}");
    // Two saves while that build waits: together they make one more build.
    save(&sound_rs, &edit("0.45"));
    sleep(Duration::from_millis(50));
    save(&sound_rs, &edit("0.5"));
    sleep(Duration::from_millis(500));
    let before_release = log.seen.len();
    release(holder);
    log.wait_for("game rebuilt", Duration::from_secs(300));
    log.wait_for("game rebuilt", Duration::from_secs(300));
    log.wait_for("save-to-code", Duration::from_secs(60));
    sleep(Duration::from_millis(1500)); // room for a build too many to show

    // Held again: now rustc runs directly, and takes cargo's lock the same way.
    let mark = log.seen.len();
    let holder = hold_cargo_lock(&target.join(profile));
    save(&sound_rs, &edit("0.6"));
    log.wait_for("waits for another cargo", Duration::from_secs(60));
    let released = log.seen.len();
    release(holder);
    log.wait_for("save-to-code", Duration::from_secs(300));
    sleep(Duration::from_millis(1000));

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let all = log.rest().to_vec();
    let text = all.join("\n");
    assert!(out.status.success(), "{text}");
    let count = |lines: &[String], what: &str| lines.iter().filter(|l| l.contains(what)).count();
    let first = &all[..mark];
    assert_eq!(count(first, "waits for another cargo"), 1, "the wait is said once:\n{text}");
    assert!(
        first.iter().any(|l| l.contains("Blocking waiting for file lock")),
        "cargo's own words are quoted:\n{text}"
    );
    assert_eq!(count(&all[..before_release], "game rebuilt"), 0, "nothing was built while the lock was held:\n{text}");
    assert_eq!(count(first, "game rebuilt"), 2, "three saves, the last two during a build: two builds:\n{text}");
    assert!(count(&all[before_release..mark], "save-to-code") >= 1, "reloaded after the lock was released:\n{text}");
    let second = &all[mark..];
    assert_eq!(count(second, "waits for another cargo"), 1, "the direct build says its wait too:\n{text}");
    assert_eq!(count(&all[mark..released], "game rebuilt"), 0, "{text}");
    assert_eq!(count(second, "game rebuilt"), 1, "{text}");
    assert!(second.iter().any(|l| l.contains("(opt-level 0, rustc)")), "built by rustc directly:\n{text}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{text}");

    // What plays at the end is the last save's code: a 0.6 sine.
    let (left, _) = read_wav(&wav);
    let tail = &left[left.len() - 24_000..];
    let peak = tail.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    assert!((peak - 0.6).abs() < 2.0 / 32768.0, "the last save's amplitude plays: peak {peak}\n{text}");
}
