//! Finds the game crate the platform runs, builds it and says where its library is, so `cargo
//! run` works from a fresh clone with no other flag and `handmade --game DIR` runs any game
//! crate. The demo is `game/` of the checkout this binary belongs to (found at run time); any
//! other crate is described by `cargo metadata` (its cdylib, target dir and sources, in or out
//! of a workspace, honouring `CARGO_TARGET_DIR`). Every game is built with the profile that
//! matches the platform's: `dev` for a debug platform, `game-fast` (release-like, incremental)
//! for a release one, its settings passed with `--config` when the crate does not define it.

use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::{CrateType, DependencyKind, MetadataCommand, Package};

use crate::cli::Config;

/// The contract crate every game depends on.
const API_CRATE: &str = "handmade_api";

/// `[profile.game-fast]` of this workspace's Cargo.toml, for a crate that does not define it
/// (a unit test keeps the two in step). Passed as `--config`: the user's files stay untouched.
const GAME_FAST_SETTINGS: [&str; 6] = [
    "inherits=\"release\"",
    "incremental=true",
    "codegen-units=256",
    "debug=false",
    "lto=false",
    "strip=\"debuginfo\"",
];

/// A game crate the platform builds, loads and watches: the demo or the one `--game` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameCrate {
    /// The package, for `cargo build -p`.
    pub package: String,
    /// Where cargo runs: the crate's workspace root (its own folder when it stands alone).
    pub workspace_root: PathBuf,
    /// The crate's folder, holding its Cargo.toml.
    pub dir: PathBuf,
    /// The library target's folder (`src/`), watched with everything under it.
    pub src_dir: PathBuf,
    /// The library target's root file (`src/lib.rs`).
    pub lib_src: PathBuf,
    pub target_dir: PathBuf,
    /// `lib<name>.so` in the game profile's output directory.
    pub library: PathBuf,
    /// The workspace lacks `[profile.game-fast]`: its settings go on cargo's command line.
    pub define_profile: bool,
}

impl GameCrate {
    /// The demo game `game_dir` of the checkout at `workspace`.
    pub fn demo(workspace: &Path, game_dir: &Path) -> Self {
        let target_dir = target_dir(Some(workspace));
        Self {
            package: "game".to_string(),
            workspace_root: workspace.to_path_buf(),
            dir: game_dir.to_path_buf(),
            src_dir: game_dir.join("src"),
            lib_src: game_dir.join("src/lib.rs"),
            library: library_path(&target_dir, "game"),
            target_dir,
            define_profile: false,
        }
    }

    /// Any game crate, described by `cargo metadata`; one line naming `dir` when it is not one.
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let say = |what: String| format!("--game {}: {what}", dir.display());
        let manifest = dir.join("Cargo.toml");
        if !dir.is_dir() {
            return Err(say("no such folder".to_string()));
        }
        if !manifest.is_file() {
            return Err(say("no Cargo.toml there (`handmade new DIR` makes a game crate)".to_string()));
        }
        let manifest = manifest.canonicalize().map_err(|e| say(e.to_string()))?;
        let metadata =
            MetadataCommand::new().manifest_path(&manifest).no_deps().exec().map_err(|e| say(metadata_error(&e)))?;
        let package =
            metadata.packages.iter().find(|p| p.manifest_path.as_std_path() == manifest).ok_or_else(|| {
                say("a workspace manifest without a package: name the game crate's own folder".into())
            })?;
        check_is_game(package).map_err(say)?;
        let lib = package.targets.iter().find(|t| t.crate_types.contains(&CrateType::CDyLib)).expect("checked");
        let target_dir = metadata.target_directory.into_std_path_buf();
        let workspace_root = metadata.workspace_root.into_std_path_buf();
        let lib_src = lib.src_path.clone().into_std_path_buf();
        Ok(Self {
            package: package.name.to_string(),
            define_profile: game_profile() != "dev" && !defines_game_fast(&workspace_root.join("Cargo.toml")),
            dir: manifest.parent().expect("a manifest has a folder").to_path_buf(),
            src_dir: lib_src.parent().expect("a source file has a folder").to_path_buf(),
            library: library_path(&target_dir, &lib.name.replace('-', "_")),
            lib_src,
            target_dir,
            workspace_root,
        })
    }
}

/// A game is a cdylib built against the contract crate.
fn check_is_game(package: &Package) -> Result<(), String> {
    let name = &package.name;
    if !package.targets.iter().any(|t| t.crate_types.contains(&CrateType::CDyLib)) {
        return Err(format!(
            "crate `{name}` has no cdylib library, so there is no game to load (add `[lib] crate-type = [\"cdylib\"]`)"
        ));
    }
    let uses_api = package.dependencies.iter().any(|d| d.name == API_CRATE && d.kind == DependencyKind::Normal);
    if !uses_api {
        return Err(format!("crate `{name}` does not depend on {API_CRATE}, the contract a game is built against"));
    }
    Ok(())
}

/// cargo's own first error line (`error: failed to parse manifest ...`), not its whole stderr.
fn metadata_error(error: &cargo_metadata::Error) -> String {
    match error {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            let line = stderr.lines().find(|l| l.starts_with("error")).or(stderr.lines().next()).unwrap_or("");
            format!("cargo metadata failed: {}", line.trim_start_matches("error: "))
        }
        other => other.to_string(),
    }
}

/// Does this manifest define `[profile.game-fast]`? A plain line match (no TOML parser for one
/// table name): a manifest that spells it another way gets ours on the command line, over its own.
fn defines_game_fast(manifest: &Path) -> bool {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    text.lines().any(|l| l.trim() == "[profile.game-fast]")
}

/// `target/<profile dir>/lib<name>.so`.
fn library_path(target_dir: &Path, lib_name: &str) -> PathBuf {
    let dir = if game_profile() == "dev" { "debug" } else { game_profile() };
    target_dir.join(dir).join(format!("lib{lib_name}.so"))
}

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

/// The Cargo profile the game is built with: `dev` for a debug platform, `game-fast` for an
/// optimised one, unless `HANDMADE_GAME_PROFILE` names one of the two (a debug platform with
/// the optimised game and its two-tier rebuild: how the tests run that path without building
/// an optimised platform).
pub fn game_profile() -> &'static str {
    static PROFILE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    let built = if env!("HANDMADE_OPT_LEVEL") == "0" { "dev" } else { "game-fast" };
    PROFILE.get_or_init(|| match std::env::var("HANDMADE_GAME_PROFILE") {
        Ok(p) if p == "dev" => "dev",
        Ok(p) if p == "game-fast" => "game-fast",
        Ok(p) => {
            log::warn!("HANDMADE_GAME_PROFILE={p}: not `dev` or `game-fast`; the game is built with {built}");
            built
        }
        Err(_) => built,
    })
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
    library_path(&target_dir(workspace), "game")
}

/// The `cargo build` command that (re)builds `game` with `profile`, into its target dir.
pub fn cargo_build_command(game: &GameCrate, profile: &str) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&game.workspace_root).args(["build", "--quiet", "-p", &game.package, "--profile", profile]);
    if game.define_profile && profile == "game-fast" {
        for setting in GAME_FAST_SETTINGS {
            cmd.arg("--config").arg(format!("profile.game-fast.{setting}"));
        }
    }
    cmd.env("CARGO_TARGET_DIR", &game.target_dir);
    cmd
}

/// Builds the game synchronously (start-up). Cargo does nothing when it is up to date.
pub fn build_game(game: &GameCrate) -> Result<(), String> {
    log::info!("building the game library (cargo build -p {} --profile {})", game.package, game_profile());
    run_build(cargo_build_command(game, game_profile()))
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
        let game = GameCrate::demo(&workspace, &workspace.join("game"));
        if let Err(e) = build_start_up(&game) {
            log::warn!("{e}; using {} as it is", library.display());
        }
    }
    library
}

/// What a run loads and watches: the library (`--game-lib`, or the game crate's, built first)
/// and, unless `--no-rebuild`, the crate to rebuild on save: `--game DIR`, the demo at
/// `--game-src`, or this checkout's demo. One line when the crate or its first build fails.
pub fn resolve_game(config: &Config) -> Result<(PathBuf, Option<GameCrate>), String> {
    let game = match (&config.game, &config.game_src) {
        (Some(dir), _) => Some(GameCrate::from_dir(dir)?),
        (None, Some(dir)) if config.rebuild => Some(demo_at(dir)?),
        _ => workspace_dir().map(|workspace| GameCrate::demo(&workspace, &workspace.join("game"))),
    };
    let library = match (&config.game_lib, &game) {
        (Some(path), _) => path.clone(),
        (None, Some(game)) => {
            if let Err(e) = build_start_up(game) {
                if !game.library.exists() {
                    return Err(e);
                }
                log::warn!("{e}; using {} as it is", game.library.display());
            }
            game.library.clone()
        }
        (None, None) => default_game_library(None),
    };
    Ok((library, game.filter(|_| config.rebuild)))
}

/// `--game-src DIR`: the demo game at `DIR`, inside a Cargo workspace.
fn demo_at(dir: &Path) -> Result<GameCrate, String> {
    match crate::dev::rebuild::game_source_dir(Some(dir)) {
        Some((workspace, game_dir)) => Ok(GameCrate::demo(&workspace, &game_dir)),
        None => Err(format!(
            "--game-src {}: not a game crate inside a Cargo workspace (no such directory, or no workspace \
             Cargo.toml above it)",
            dir.display()
        )),
    }
}

/// Refuses to build sources another user could change (building them runs their code as us):
/// the game's manifest and every file and folder under its sources, and the contract crate
/// (`platform/api`, compiled into every game), each with every directory up to `/`.
pub fn refuse_unsafe_sources(game: &GameCrate) -> Result<(), String> {
    let mut files = vec![game.dir.join("Cargo.toml")];
    let mut trees = vec![game.src_dir.clone()];
    // The game's own workspace (the demo's) and the checkout this binary belongs to (which
    // `handmade new` points a game's contract dependency at).
    let mut checkouts = vec![game.workspace_root.clone()];
    checkouts.extend(workspace_dir().filter(|w| *w != game.workspace_root));
    for api in checkouts.iter().map(|c| c.join("platform/api")).filter(|api| api.is_dir()) {
        files.push(api.join("Cargo.toml"));
        trees.extend([api.join("src"), api.join("derive/src")]);
    }
    let refuse = |path: &Path| crate::private_fs::refuse_unsafe(path, true).map_err(|e| e.to_string());
    for file in &files {
        refuse(file)?;
    }
    let mut pending: Vec<PathBuf> = trees.into_iter().filter(|t| t.exists()).collect();
    while let Some(path) = pending.pop() {
        refuse(&path)?;
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    Ok(())
}

/// The start-up build, saying which checkout it uses when it is not the one this binary was
/// built in (a moved or copied checkout).
fn build_start_up(game: &GameCrate) -> Result<(), String> {
    refuse_unsafe_sources(game).map_err(|e| format!("not building the game: {e}"))?;
    let built_at = Path::new(env!("CARGO_MANIFEST_DIR"));
    if game.package == "game" && game.workspace_root != built_at && is_checkout(&game.workspace_root) {
        let (here, there) = (game.workspace_root.display(), built_at.display());
        log::info!("using the checkout at {here} (this binary was built at {there})");
    }
    build_game(game).map_err(|e| format!("could not build the game {} ({e})", game.dir.display()))
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

    /// What `--config` passes is what this workspace's `[profile.game-fast]` says.
    #[test]
    fn the_command_line_profile_is_the_workspace_one() {
        let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
        let table = manifest.split("\n[profile.game-fast]\n").nth(1).expect("the workspace defines game-fast");
        let settings: Vec<String> = table
            .lines()
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.replace(' ', ""))
            .collect();
        assert_eq!(settings, GAME_FAST_SETTINGS);
    }

    #[test]
    fn a_crate_without_the_profile_gets_it_on_the_command_line_only() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut game = GameCrate::demo(workspace, &workspace.join("game"));
        let args = |game: &GameCrate, profile| {
            let cmd = cargo_build_command(game, profile);
            cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(args(&game, "game-fast"), "build --quiet -p game --profile game-fast");
        game.define_profile = true;
        let line = args(&game, "game-fast");
        assert!(line
            .starts_with("build --quiet -p game --profile game-fast --config profile.game-fast.inherits=\"release\""));
        assert_eq!(line.matches("--config").count(), GAME_FAST_SETTINGS.len());
        assert_eq!(args(&game, "dev"), "build --quiet -p game --profile dev", "dev always exists");
        assert!(
            defines_game_fast(&workspace.join("Cargo.toml")) && !defines_game_fast(&workspace.join("game/Cargo.toml"))
        );
    }

    /// Real cargo accepts the settings: a new game crate, which has no such profile, builds
    /// with `game-fast` from the command line alone, its manifest untouched.
    #[test]
    fn a_new_game_builds_with_the_profile_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let made = crate::dev::scaffold::new_game(&dir.path().join("fast")).unwrap();
        let manifest = std::fs::read_to_string(made.dir.join("Cargo.toml")).unwrap();
        let mut game = GameCrate::from_dir(&made.dir).unwrap();
        game.define_profile = true; // what a release platform decides for this crate
        game.target_dir = dir.path().join("target");
        run_build(cargo_build_command(&game, "game-fast")).unwrap();
        assert!(game.target_dir.join("game-fast/libfast.so").is_file());
        assert_eq!(std::fs::read_to_string(made.dir.join("Cargo.toml")).unwrap(), manifest);
    }

    #[test]
    fn a_game_crate_is_described_by_cargo_metadata() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
        let game = GameCrate::from_dir(&workspace.join("game")).unwrap();
        assert_eq!((game.package.as_str(), game.workspace_root.as_path()), ("game", workspace));
        assert_eq!((game.src_dir.clone(), game.dir.clone()), (workspace.join("game/src"), workspace.join("game")));
        assert_eq!(game.library.file_name().unwrap(), "libgame.so");
        assert!(!game.define_profile, "this workspace defines game-fast");
        let err = GameCrate::from_dir(&workspace.join("platform/api")).unwrap_err();
        assert!(err.contains("crate `handmade_api` has no cdylib library"), "{err}");
    }
}
