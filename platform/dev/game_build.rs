//! Finds the game library this workspace builds and builds it when it is missing or stale, so
//! `cargo run` works from a fresh clone with no other flag. The target directory and profile
//! come from build.rs; the game is built with the profile that matches the platform's: `dev`
//! for a debug platform, `game-fast` (release-like, incremental) for a release one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Is `dir` a checkout of this project (a workspace with the demo game)?
fn is_checkout(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("game/Cargo.toml").is_file()
}

/// The checkout the running binary belongs to, found at run time: from the executable's own
/// path (`target/<profile>/handmade`, then up), then from the current directory, and only when
/// neither is in a checkout, the path it was built at. A copied checkout (with its `target/`)
/// so builds, loads and watches its own game, not the original's.
pub fn workspace_dir() -> Option<PathBuf> {
    let up_from = |start: PathBuf| start.ancestors().find(|d| is_checkout(d)).map(Path::to_path_buf);
    let from_exe = std::env::current_exe().ok().and_then(|exe| up_from(exe.parent()?.to_path_buf()));
    let found = from_exe.or_else(|| std::env::current_dir().ok().and_then(up_from));
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    found.or_else(|| is_checkout(&built).then_some(built))
}

/// The Cargo profile the game is built with.
pub fn game_profile() -> &'static str {
    if env!("HANDMADE_OPT_LEVEL") == "0" {
        "dev"
    } else {
        "game-fast"
    }
}

/// The target directory for `workspace`: `CARGO_TARGET_DIR` if set; the one this binary was
/// built into if it belongs to `workspace`; otherwise `workspace/target` (a moved checkout).
pub fn target_dir(workspace: Option<&Path>) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let built = PathBuf::from(env!("HANDMADE_TARGET_DIR"));
    match workspace {
        Some(workspace) if !built.starts_with(workspace) => workspace.join("target"),
        _ => built,
    }
}

/// Where the game profile puts `libgame.so` for `workspace`.
pub fn default_game_library(workspace: Option<&Path>) -> PathBuf {
    let dir = if game_profile() == "dev" { "debug" } else { game_profile() };
    target_dir(workspace).join(dir).join("libgame.so")
}

/// The `cargo build` command that (re)builds the game library of `workspace`.
pub fn cargo_build_command(workspace: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace).args(["build", "--quiet", "-p", "game", "--profile", game_profile()]);
    cmd.env("CARGO_TARGET_DIR", target_dir(Some(workspace)));
    cmd
}

/// Builds the game synchronously (start-up). Cargo does nothing when it is up to date.
pub fn build_game(workspace: &Path) -> Result<(), String> {
    log::info!("building the game library (cargo build -p game --profile {})", game_profile());
    run_build(cargo_build_command(workspace))
}

/// Builds the game from the rebuild watcher's thread, at a lower CPU priority (nice 10) so the
/// compiler does not take the frame loop's core away from it on a small machine, and tied to the
/// platform's life (cargo gets SIGTERM when the platform exits).
#[allow(dead_code)] // the watcher builds through fast_build.rs now
pub fn build_game_in_background(workspace: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = cargo_build_command(workspace);
    // SAFETY: the closure runs in the child between fork and exec and only makes two plain
    // system calls (`setpriority`, `prctl`) that neither allocate nor take locks.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            // A build still running when the platform exits is stopped, not left behind.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    run_build(cmd)
}

fn run_build(mut cmd: Command) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(first_error(&String::from_utf8_lossy(&output.stderr)))
}

/// The compiler's first error and where it is: `error: ... (game/src/lib.rs:90:10)`.
pub fn first_error(stderr: &str) -> String {
    let mut lines = stderr.lines().skip_while(|l| !l.trim_start().starts_with("error"));
    let Some(error) = lines.next() else { return "cargo build failed".to_string() };
    let place = lines.take(3).find_map(|l| l.trim_start().strip_prefix("--> "));
    match place {
        Some(place) => format!("{} ({place})", error.trim()),
        None => error.trim().to_string(),
    }
}

/// The library to load: `--game-lib`, or the one `workspace` (default: this binary's) builds,
/// built first.
pub fn resolve_game_library(flag: Option<&Path>, workspace: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    let workspace = workspace.map(Path::to_path_buf).or_else(workspace_dir);
    let library = default_game_library(workspace.as_deref());
    if let Some(workspace) = workspace {
        let built_at = Path::new(env!("CARGO_MANIFEST_DIR"));
        if workspace != built_at {
            log::info!("using the checkout at {} (this binary was built at {})", workspace.display(), built_at.display());
        }
        if let Err(e) = build_game(&workspace) {
            log::warn!("could not build the game ({e}); using {} as it is", library.display());
        }
    }
    library
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_compiler_error_names_its_place() {
        let stderr = "   Compiling game\nwarning: unused\nerror: this file contains an unclosed delimiter\n  --> game/src/lib.rs:90:10\n   |\nerror: aborting";
        assert_eq!(first_error(stderr), "error: this file contains an unclosed delimiter (game/src/lib.rs:90:10)");
        assert_eq!(first_error("error[E0425]: cannot find value `x`"), "error[E0425]: cannot find value `x`");
        assert_eq!(first_error(""), "cargo build failed");
    }
}
