//! Rebuild on save, end to end, in a temporary copy of the workspace: the platform runs
//! headless and paced; a one-line edit of the game's sound is saved, rebuilt and heard; a
//! compile error keeps the old code running with the sound unbroken; the fix reloads again.

mod common;

use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use common::*;

use save_like_an_editor as save;

#[test]
fn a_saved_edit_is_rebuilt_reloaded_and_heard() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    copy_workspace(&ws);
    let target = dir.path().join("target");
    let wav = dir.path().join("out.wav");
    let (child, mut log) = spawn_watching(&ws, &target, &wav, Duration::from_secs(300));
    sleep(Duration::from_millis(500));

    let sound_rs = ws.join("game/src/sound.rs");
    let original = fs::read_to_string(&sound_rs).unwrap();
    let anchor = "const AMPLITUDE: f32 = 0.25;";
    assert_eq!(original.matches(anchor).count(), 1, "the edit needs its anchor in game/src/sound.rs");
    save(&sound_rs, &original.replace(anchor, "const AMPLITUDE: f32 = 0.5;"));
    let reloaded = log.wait_for("save-to-code", Duration::from_secs(120));
    println!("{reloaded}");
    assert!(reloaded.contains("build") && reloaded.contains("load"), "{reloaded}");
    sleep(Duration::from_millis(500));

    let lib_rs = ws.join("game/src/lib.rs");
    let good = fs::read_to_string(&lib_rs).unwrap();
    save(&lib_rs, &format!("{good}\nfn broken( {{\n"));
    let failed = log.wait_for("game build failed", Duration::from_secs(120));
    assert!(failed.contains("error"), "the compiler's first error line is shown: {failed}");
    sleep(Duration::from_millis(700)); // the old code keeps playing through the broken build
    save(&lib_rs, &good);
    log.wait_for("save-to-code", Duration::from_secs(120));
    sleep(Duration::from_millis(300));

    // SAFETY-free way to stop it as a user would: Ctrl-C (SIGINT) ends the run cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let rest = log.rest().join("\n");
    assert!(out.status.success(), "{rest}");
    // One reload per finished tier: the optimised tier of a save may or may not finish before
    // the next save stops it, so the count is read from the log, and at least the two edits'.
    let built = log.seen.iter().filter(|l| l.contains("save-to-code")).count() as u64;
    assert!(built >= 2, "{rest}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), built, "{rest}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{rest}");
    assert_eq!(stat_u64(&out.stdout, "game_panics"), 0, "{rest}");

    // One unbroken sine: 0.25 until the first reload, 0.5 after it, the phase running on
    // through both reloads and the failed build.
    let (left, right) = read_wav(&wav);
    assert_eq!(left, right);
    let peak = |b: &[f64]| b.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let switch = left.chunks(800).position(|b| peak(b) > 0.4).expect("the edit was heard") * 800;
    assert!(max_error_steps(&left, |n| if n < switch { 0.25 } else { 0.5 }) <= 1.0, "sound broken");
    assert!(left.len() > switch + 48_000, "the new code played for a while");
}
