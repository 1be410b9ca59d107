//! Where things are and how they are built: the workspace, this build's target and profile
//! directories (found from the running executable, which Cargo puts in
//! `<target>/<profile>/{deps,examples}/`), `cargo build` itself, the game variants the tests
//! load, the platform binary, and a private copy of the workspace to edit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate lives in `<workspace>/tests/support`).
pub fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).expect("tests/support sits two levels below the workspace").to_path_buf()
}

/// `<target>/<profile>`: the directory of this build's binaries and libraries.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    exe.ancestors().nth(2).expect("executables live in <target>/<profile>/{deps,examples}").to_path_buf()
}

/// `<target>`: the target directory this build uses.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().expect("the profile directory sits in the target directory").to_path_buf()
}

/// The Cargo profile of this build (`debug` is the directory of `dev`).
fn profile_name() -> String {
    let dir = profile_dir();
    let name = dir.file_name().expect("a profile directory name").to_string_lossy();
    if name == "debug" {
        "dev".to_string()
    } else {
        name.into_owned()
    }
}

/// Runs `cargo build --quiet ARGS` in the workspace, into `target` when given (the workspace's
/// usual target directory otherwise); panics naming the command when it fails.
pub fn cargo_build(args: &[&str], target: Option<&Path>) {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace()).args(["build", "--quiet"]).args(args);
    if let Some(dir) = target {
        cmd.arg("--target-dir").arg(dir);
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "`cargo build {}` failed", args.join(" "));
}

/// Builds the game (dev profile) with `features` (comma-separated, "" for the default game)
/// into a target directory of its own, so variants never overwrite each other, and returns the
/// library. Cargo does nothing when it is up to date.
pub fn build_game_variant(features: &str) -> PathBuf {
    let name = if features.is_empty() { "default".to_string() } else { features.replace(',', "-") };
    let dir = target_dir().join("test-games").join(&name);
    let mut args = vec!["-p", "game"];
    if !features.is_empty() {
        args.extend(["--features", features]);
    }
    cargo_build(&args, Some(&dir));
    dir.join("debug/libgame.so")
}

/// The game as the demo loads it: built with this build's profile (optimised under
/// `--release`) into the workspace's target directory, beside the platform. What the reports
/// that measure timing load: the tests' variants are unoptimised, and the demo's frame at
/// opt-level 0 takes about 5 ms before its sound write, against 0.2 ms optimised.
pub fn build_game_like_the_demo() -> PathBuf {
    cargo_build(&["--profile", &profile_name(), "-p", "game"], None);
    profile_dir().join("libgame.so")
}

/// The platform executable of this build's profile, built first if it is missing (an example
/// run on its own; `cargo test` has always built it).
pub fn platform_binary() -> PathBuf {
    let binary = profile_dir().join("handmade");
    if !binary.exists() {
        cargo_build(&["--profile", &profile_name(), "--bin", "handmade"], None);
    }
    binary
}

/// An example's executable of this build's profile, built first if it is missing.
pub fn example_binary(name: &str) -> PathBuf {
    let binary = profile_dir().join("examples").join(name);
    if !binary.exists() {
        cargo_build(&["--profile", &profile_name(), "--example", name], None);
    }
    binary
}

/// Compiles C `source` into `dir/lib<name>.so` with the system's `cc`: shared libraries that
/// are not the game (no symbols, a crashing constructor) for the loader's tests.
pub fn build_c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let file = dir.join(format!("{name}.c"));
    fs::write(&file, source).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let library = dir.join(format!("lib{name}.so"));
    let status = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&file).status().expect("run cc");
    assert!(status.success(), "cc -shared {} failed", file.display());
    library
}

/// Copies the workspace (sources and manifests, not `target/`, `.git/` or the fuzz crate)
/// into `to`, so a test can edit the game's sources without touching the real ones.
pub fn copy_workspace(to: &Path) {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
        for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())).flatten() {
            let name = entry.file_name();
            if name == "target" || name == ".git" || name == "fuzz" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                copy_dir(&path, &to.join(&name));
            } else {
                fs::copy(&path, to.join(&name)).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
            }
        }
    }
    copy_dir(&workspace(), to);
}
