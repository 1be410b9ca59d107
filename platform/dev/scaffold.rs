//! `handmade new DIR`: writes a minimal game crate (a square and a tone that follows it, from
//! `template/`) into a new or empty folder anywhere, depending on this checkout's contract crate
//! by absolute path, with a `[workspace]` of its own so plain `cargo build` works there.

use std::fs;
use std::path::{Path, PathBuf};

use crate::dev::game_build;

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs");
const README: &str = include_str!("template/README.md.in");

/// What `new_game` made.
#[derive(Debug)]
pub struct NewGame {
    pub name: String,
    pub dir: PathBuf,
}

/// Writes the game crate into `dir`; one line when `dir` is not new or empty, or when the
/// contract crate cannot be found.
pub fn new_game(dir: &Path) -> Result<NewGame, String> {
    refuse_used(dir)?;
    let checkout = game_build::workspace_dir()
        .ok_or("cannot find the handmade checkout this binary belongs to (its platform/api is the contract)")?;
    let api = checkout
        .join("platform/api")
        .canonicalize()
        .map_err(|e| format!("{}/platform/api: {e}", checkout.display()))?;
    fs::create_dir_all(dir.join("src")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = crate_name(&dir);
    let fill = |template: &str| {
        let text = template.replace("{name}", &name).replace("{dir}", &dir.display().to_string());
        text.replace("{checkout}", &checkout.display().to_string())
    };
    let files = [
        ("Cargo.toml", CARGO_TOML.replace("{name}", &name).replace("{api}", &toml_escape(&api.to_string_lossy()))),
        ("src/lib.rs", LIB_RS.to_string()),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    // The checkout's lock file pins the contract's own dependencies to the versions the
    // platform was built with (and already downloaded); cargo drops the entries it does not need.
    let _ = fs::copy(checkout.join("Cargo.lock"), dir.join("Cargo.lock"));
    Ok(NewGame { name, dir })
}

/// Only a new or empty folder: a game crate is never written over someone's files.
fn refuse_used(dir: &Path) -> Result<(), String> {
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{} already exists and is not empty; `handmade new` needs a new or empty folder",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => Err(format!("{} exists and is not a folder", dir.display())),
        Err(e) => Err(format!("cannot read {}: {e}", dir.display())),
    }
}

/// The package name: the folder's name as Cargo accepts it (`My Game!` -> `my_game_`), never
/// one that clashes with the contract or a built-in crate.
fn crate_name(dir: &Path) -> String {
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let reserved = ["handmade_api", "handmade_api_derive", "std", "core", "alloc", "test", "proc_macro", "self"];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) || reserved.contains(&name.as_str()) {
        name.insert_str(0, "game_");
    }
    name
}

/// A TOML basic string's body: backslashes and quotes escaped.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_folder_and_are_valid_package_names() {
        assert_eq!(crate_name(Path::new("/tmp/My Game!")), "my_game_");
        assert_eq!(crate_name(Path::new("/tmp/tone-toy")), "tone-toy");
        assert_eq!(crate_name(Path::new("/tmp/2048")), "game_2048");
        assert_eq!(crate_name(Path::new("/tmp/handmade_api")), "game_handmade_api");
        assert_eq!(crate_name(Path::new("/")), "game_");
    }

    #[test]
    fn a_used_folder_or_a_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = new_game(dir.path()).unwrap_err();
        assert!(err.ends_with("already exists and is not empty; `handmade new` needs a new or empty folder"), "{err}");
        let err = new_game(&dir.path().join("notes.txt")).unwrap_err();
        assert!(err.ends_with("notes.txt exists and is not a folder"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");
    }

    #[test]
    fn an_empty_folder_gets_a_crate_that_names_the_contract_by_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let made = new_game(dir.path()).unwrap();
        let manifest = fs::read_to_string(made.dir.join("Cargo.toml")).unwrap();
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("platform/api").canonicalize().unwrap();
        assert!(manifest.contains(&format!("handmade_api = {{ path = \"{}\" }}", api.display())), "{manifest}");
        assert!(manifest.contains(&format!("name = \"{}\"", made.name)) && manifest.contains("\n[workspace]\n"));
        assert_eq!(fs::read_to_string(made.dir.join("src/lib.rs")).unwrap(), LIB_RS);
        assert!(!fs::read_to_string(made.dir.join("README.md")).unwrap().contains('{'), "every placeholder filled");
    }
}
