//! Your own game, end to end with the real binary and real cargo, all in temporary folders:
//! `handmade new` scaffolds a crate that plain `cargo build` builds; `handmade --game` runs it
//! headless (its tone is in the WAV), then rebuilds and reloads it when its source is saved; a
//! crate inside a workspace builds into `CARGO_TARGET_DIR`; a copied checkout (with its
//! `target/`) builds, loads and watches its own game; each bad input is one line and exit 1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// The platform binary (or `binary`) with `args`, logging at `info`, never told where to build
/// (a `CARGO_TARGET_DIR` of the test's own environment would move every game's library).
fn handmade_at(binary: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(args).env("RUST_LOG", "info").env_remove("CARGO_TARGET_DIR");
    cmd
}

fn handmade(args: &[&str]) -> Command {
    handmade_at(&platform_binary(), args)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// `handmade new DIR`, checked: exit 0 and the next command named.
fn new_game(dir: &Path) {
    let out = handmade(&["new", path(dir)]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "handmade new failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("handmade --game {}", dir.display())), "{stdout}");
}

/// The scaffold's `src/lib.rs`, its tone changed from `from` Hz to `to` Hz, saved the way
/// editors do (a new file renamed over the old one).
fn change_tone(dir: &Path, from: &str, to: &str) {
    let lib = dir.join("src/lib.rs");
    let text = fs::read_to_string(&lib).unwrap();
    let anchor = format!("const BASE_HZ: f32 = {from};");
    assert_eq!(text.matches(&anchor).count(), 1, "the edit needs its anchor in src/lib.rs");
    let staged = dir.join("src/lib.rs.new");
    fs::write(&staged, text.replace(&anchor, &format!("const BASE_HZ: f32 = {to};"))).unwrap();
    fs::rename(&staged, &lib).unwrap();
}

/// The run failed with exactly one line that is not an `[INFO ]` log line, and it says `what`.
fn one_line_error(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("[INFO ")).collect();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(lines.len(), 1, "one line of error, not:\n{stderr}");
    assert!(lines[0].starts_with("handmade: ") && lines[0].contains(what), "{stderr}");
    lines[0].to_string()
}

#[test]
fn a_new_game_builds_with_plain_cargo_runs_headless_and_reloads_on_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Tone Toy");
    new_game(&dir);
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"tone_toy\"") && manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");
    assert!(fs::read_to_string(dir.join("src/lib.rs")).unwrap().lines().count() < 110, "a minimal game");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo).arg("build").current_dir(&dir).env_remove("CARGO_TARGET_DIR").output().unwrap();
    assert!(built.status.success(), "plain cargo build: {}", String::from_utf8_lossy(&built.stderr));
    let library = dir.join("target/debug/libtone_toy.so");
    assert!(library.is_file(), "cargo build made {}", library.display());

    // Headless and unpaced, to the end: the scaffold's tone, 256 Hz at 0.25, unbroken.
    let wav = tmp.path().join("first.wav");
    let args = ["--game", path(&dir), "--headless", "--audio", "wav", "--wav-out", path(&wav), "--frames", "120"];
    let out = handmade(&args).arg("--stats").output().unwrap();
    let stderr = expect_success(&out);
    assert!(stderr.contains(&format!("loaded game library {}", library.display())), "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "heap_allocs_after_warmup"), 0, "{stderr}");
    let (left, right) = read_wav(&wav);
    assert_eq!((left.len(), &left), (96_000, &right));
    let tone = check_tone(&left, TONE_HZ, RATE);
    assert!((tone.frequency_hz - 256.0).abs() < 0.5 && (tone.peak - 0.25).abs() < 0.001, "{tone:?}");
    assert_eq!(tone.discontinuities, 0, "{tone:?}\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));

    edit_while_running(tmp.path(), &dir, &library);
}

/// Paced, with the watcher on: a saved edit of the tone is rebuilt, reloaded and heard.
fn edit_while_running(tmp: &Path, dir: &Path, library: &Path) {
    let wav = tmp.join("edited.wav");
    let args = ["--game", path(dir), "--headless", "--realtime", "--audio", "wav", "--wav-out", path(&wav), "--stats"];
    let mut child = Running::from(handmade(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for(&format!("rebuilding the game when {} changes", dir.display()), Duration::from_secs(120));
    sleep(Duration::from_millis(500));
    change_tone(dir, "256.0", "384.0");
    let reloaded = log.wait_for_unless("save-to-code", Some("build failed"), Duration::from_secs(120));
    // Either the build's report or the per-frame poll (which can see cargo's new file first)
    // loads it; the line names the library either way.
    let by_build = reloaded.starts_with(&format!("[INFO ] reloaded {}", library.display()));
    let by_poll =
        reloaded.starts_with(&format!("[INFO ] {} was already reloaded by the per-frame poll", library.display()));
    assert!(by_build || by_poll, "{reloaded}");
    sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let rest = log.rest().join("\n");
    assert!(out.status.success(), "{rest}");
    // One reload for the save; under load the library's own change poll can load the new file
    // before the build reports, and the report then reloads it again (the same code).
    assert!(stat_u64(&out.stdout, "reloads") >= 1, "{rest}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{rest}");

    // Before the save the old pitch, after the reload the new one; the phase runs on.
    let (left, _) = read_wav(&wav);
    let (first, last) = (&left[..12_000], &left[left.len() - 24_000..]);
    let (before, after) = (check_tone(first, 256.0, RATE), check_tone(last, 384.0, RATE));
    assert!((before.frequency_hz - 256.0).abs() < 1.0 && before.discontinuities == 0, "{before:?}");
    assert!((after.frequency_hz - 384.0).abs() < 1.0 && after.discontinuities == 0, "{after:?}");
}

#[test]
fn a_game_inside_a_workspace_builds_into_cargo_target_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().join("outer");
    let member = outer.join("games/beeper");
    new_game(&member);
    // A member of the outer workspace now, not a workspace of its own.
    let manifest = fs::read_to_string(member.join("Cargo.toml")).unwrap();
    fs::write(member.join("Cargo.toml"), manifest.replace("\n[workspace]\n", "\n")).unwrap();
    fs::write(outer.join("Cargo.toml"), "[workspace]\nmembers = [\"games/beeper\"]\nresolver = \"2\"\n").unwrap();
    fs::rename(member.join("Cargo.lock"), outer.join("Cargo.lock")).unwrap();
    let target = tmp.path().join("elsewhere");

    let args = ["--game", path(&member), "--headless", "--audio", "none", "--frames", "30", "--no-rebuild"];
    let out = handmade(&args).env("CARGO_TARGET_DIR", &target).output().unwrap();
    let stderr = expect_success(&out);
    let library = target.join("debug/libbeeper.so");
    assert!(stderr.contains(&format!("loaded game library {}", library.display())), "{stderr}");
    assert!(!member.join("target").exists() && !outer.join("target").exists(), "built into CARGO_TARGET_DIR only");
}

/// A checkout copied with what its binary needs from `target/` (the platform and the probe, as
/// a user would have after `cargo build`): the copy's binary, run without rebuilding the
/// platform, builds, loads and watches the copy's game, not the original's.
#[test]
fn a_copied_checkout_runs_its_own_game() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("moved");
    copy_workspace(&copy);
    let bin = copy.join("target/debug");
    fs::create_dir_all(&bin).unwrap();
    for name in ["handmade", "handmade-probe"] {
        fs::copy(profile_dir().join(name), bin.join(name)).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
    let binary = bin.join("handmade");
    let mut child = Running::from(
        handmade_at(&binary, &["--headless", "--realtime", "--audio", "none", "--stats"])
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    let own = log.wait_for("using the checkout at", Duration::from_secs(300));
    assert!(own.contains(&format!("using the checkout at {}", copy.display())), "{own}");
    let library = copy.join("target/debug/libgame.so");
    log.wait_for(&format!("loaded game library {}", library.display()), Duration::from_secs(300));
    log.wait_for(&format!("rebuilding the game when {} changes", copy.join("game").display()), Duration::from_secs(30));
    sleep(Duration::from_millis(500));

    let sound_rs = copy.join("game/src/sound.rs");
    let text = fs::read_to_string(&sound_rs).unwrap();
    let anchor = "const AMPLITUDE: f32 = 0.25;";
    assert_eq!(text.matches(anchor).count(), 1, "the edit needs its anchor in game/src/sound.rs");
    fs::write(&sound_rs, text.replace(anchor, "const AMPLITUDE: f32 = 0.5;")).unwrap();
    let reloaded = log.wait_for_unless("save-to-code", Some("build failed"), Duration::from_secs(300));
    // Either the build's report or the per-frame poll (which can see cargo's new file first)
    // loads it; the line names the library either way.
    let by_build = reloaded.starts_with(&format!("[INFO ] reloaded {}", library.display()));
    let by_poll =
        reloaded.starts_with(&format!("[INFO ] {} was already reloaded by the per-frame poll", library.display()));
    assert!(by_build || by_poll, "{reloaded}");

    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let rest = log.rest().join("\n");
    assert!(out.status.success(), "{rest}");
    // At least the one after the save (see `edit_while_running`).
    assert!(stat_u64(&out.stdout, "reloads") >= 1, "{rest}");
    let original = workspace().display().to_string();
    assert!(!rest.lines().any(|l| l.contains(&format!("{original}/"))), "the original checkout is not used:\n{rest}");
}

#[test]
fn new_refuses_a_folder_in_use_in_one_line_and_leaves_it_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let out = handmade(&["new", path(tmp.path())]).output().unwrap();
    one_line_error(&out, "already exists and is not empty");
    let entries: Vec<PathBuf> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries, [tmp.path().join("notes.txt")]);
}

/// Writes a crate by hand: `lib` is its `[lib]` table's body, `deps` its `[dependencies]`.
fn hand_made_crate(dir: &Path, lib: &str, deps: &str) {
    fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"hand\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\n{lib}\n\n\
         [dependencies]\n{deps}\n\n[workspace]\n"
    );
    fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    fs::write(dir.join("src/lib.rs"), "pub fn nothing() {}\n").unwrap();
}

#[test]
fn bad_game_folders_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path| {
        handmade(&["--game", path(dir), "--headless", "--audio", "none", "--frames", "5"]).output().unwrap()
    };
    let api = workspace().join("platform/api");
    let api_dep = format!("handmade_api = {{ path = \"{}\" }}", api.display());

    let no_cdylib = tmp.path().join("no-cdylib");
    hand_made_crate(&no_cdylib, "", &api_dep);
    one_line_error(&run(&no_cdylib), "crate `hand` has no cdylib library");

    let no_contract = tmp.path().join("no-contract");
    hand_made_crate(&no_contract, "crate-type = [\"cdylib\"]", "");
    one_line_error(&run(&no_contract), "crate `hand` does not depend on handmade_api");

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    one_line_error(&run(&empty), "no Cargo.toml there");
    one_line_error(&run(&tmp.path().join("missing")), "no such folder");

    let broken = tmp.path().join("broken");
    new_game(&broken);
    let lib = broken.join("src/lib.rs");
    fs::write(&lib, fs::read_to_string(&lib).unwrap() + "\nfn unfinished( {\n").unwrap();
    let line = one_line_error(&run(&broken), "could not build the game");
    assert!(line.contains("unclosed delimiter") && line.contains("src/lib.rs:"), "{line}");
}

/// A game built against another copy of the contract whose version differs: the platform
/// refuses it at start-up in one line that gives both versions.
#[test]
fn a_game_built_against_another_contract_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other-checkout");
    copy_workspace(&other);
    let api_rs = other.join("platform/api/src/lib.rs");
    let text = fs::read_to_string(&api_rs).unwrap();
    let anchor = "pub const GAME_API_VERSION: u32 = ";
    let (head, tail) = text.split_once(anchor).expect("the contract names its version");
    let (version, rest) = tail.split_once(';').unwrap();
    let bumped: u32 = version.parse::<u32>().unwrap() + 1;
    fs::write(&api_rs, format!("{head}{anchor}{bumped};{rest}")).unwrap();

    let game = tmp.path().join("old-game");
    new_game(&game);
    let manifest = fs::read_to_string(game.join("Cargo.toml")).unwrap();
    let ours = workspace().join("platform/api").canonicalize().unwrap();
    let theirs = other.join("platform/api");
    fs::write(game.join("Cargo.toml"), manifest.replace(path(&ours), path(&theirs))).unwrap();

    let out = handmade(&["--game", path(&game), "--headless", "--audio", "none", "--frames", "5"]).output().unwrap();
    let line = one_line_error(&out, "was built against another contract");
    assert!(
        line.contains(&format!("(version {bumped},")) && line.contains(&format!("expects version {}", bumped - 1)),
        "{line}"
    );
}

/// The same while the game runs: a save that rebuilds it against another contract is refused
/// in one line, once, and the loaded game plays on unbroken.
#[test]
fn a_rebuild_against_another_contract_is_one_line_and_the_game_plays_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("drifter");
    new_game(&dir);
    let wav = tmp.path().join("out.wav");
    let args = ["--game", path(&dir), "--headless", "--realtime", "--audio", "wav", "--wav-out", path(&wav), "--stats"];
    let mut child = Running::from(handmade(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    log.wait_for("rebuilding the game when", Duration::from_secs(120));
    sleep(Duration::from_millis(500));

    let lib = dir.join("src/lib.rs");
    let text = fs::read_to_string(&lib).unwrap();
    let anchor = "    handmade_api::GAME_API_INFO\n";
    assert_eq!(text.matches(anchor).count(), 1, "game_api_version's body in src/lib.rs");
    let other = "    GameApiInfo { version: handmade_api::GAME_API_VERSION + 1, ..handmade_api::GAME_API_INFO }\n";
    fs::write(dir.join("src/lib.rs.new"), text.replace(anchor, other)).unwrap();
    fs::rename(dir.join("src/lib.rs.new"), &lib).unwrap();
    let refused = log.wait_for_unless("another contract", Some("build failed"), Duration::from_secs(120));
    assert!(refused.starts_with("[WARN ] reload failed, keeping the loaded game: game library"), "{refused}");
    sleep(Duration::from_millis(1000));

    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let rest = log.rest().join("\n");
    assert!(out.status.success(), "{rest}");
    assert_eq!(rest.matches("another contract").count(), 1, "said once:\n{rest}");
    let counts = (stat_u64(&out.stdout, "reloads"), stat_u64(&out.stdout, "reload_failures"));
    assert_eq!(counts, (0, 1), "{rest}");
    let (left, _) = read_wav(&wav);
    let tone = check_tone(&left, TONE_HZ, RATE);
    assert!(tone.discontinuities == 0 && (tone.frequency_hz - 256.0).abs() < 0.5, "{tone:?}");
}
