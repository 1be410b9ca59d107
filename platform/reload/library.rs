//! One loaded copy of the game library: `dlopen` it, check the contract, resolve every
//! symbol. Dropping a `LoadedLibrary` `dlclose`s it, so its function pointers must not outlive it.

use std::fs;
use std::path::Path;

use handmade_api::{
    game_output_sound_stub, game_update_and_render_stub, GameApiVersionFn, GameMigrateStateFn, GameOutputSoundFn,
    GameStateLayout, GameStateLayoutFn, GameUpdateAndRenderFn, GAME_API_INFO, SYMBOL_API_VERSION,
    SYMBOL_MIGRATE_STATE, SYMBOL_OUTPUT_SOUND, SYMBOL_STATE_LAYOUT, SYMBOL_UPDATE_AND_RENDER,
};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use super::error::GameCodeError;

/// The game's entry points. Plain function pointers: copy them out each frame, never keep them
/// across a reload.
#[derive(Clone, Copy)]
pub struct GameFunctions {
    pub update_and_render: GameUpdateAndRenderFn,
    pub output_sound: GameOutputSoundFn,
    /// Optional: moves the state of an older shape into this library's shape.
    pub migrate_state: Option<GameMigrateStateFn>,
}

impl GameFunctions {
    /// What runs while the game is paused: a blank frame and silence.
    pub const STUBS: Self =
        Self { update_and_render: game_update_and_render_stub, output_sound: game_output_sound_stub, migrate_state: None };
}

pub(super) struct LoadedLibrary {
    // Dropping it `dlclose`s the copy; the functions below must not be called after that.
    _library: Library,
    pub functions: GameFunctions,
    /// The shape of the game's persistent state, if the library says (`game_state_layout`).
    pub state_layout: Option<GameStateLayout>,
}

impl LoadedLibrary {
    /// Opens `copy`, checks the contract and resolves every symbol. `source` names it in errors.
    pub fn open(copy: &Path, source: &Path) -> Result<Self, GameCodeError> {
        // SAFETY: loading runs the library's initialisers. The file is a copy of the game
        // library the user chose, placed in our private 0700 directory, so nobody else could
        // swap it, and a throwaway process has already loaded it without crashing.
        let library = unsafe { Library::open(Some(copy), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| GameCodeError::Open { path: source.into(), message: one_line(&e.to_string()) })?;
        let missing = |symbol: &'static [u8]| GameCodeError::MissingSymbol {
            path: source.into(),
            symbol: std::str::from_utf8(&symbol[..symbol.len() - 1]).unwrap_or("?"),
        };
        // SAFETY: each symbol is looked up with the exact type the contract declares for it;
        // the version check refuses a library whose contract (and so whose types) differ
        // before any other symbol is used.
        let (functions, state_layout) = unsafe {
            let version =
                *library.get::<GameApiVersionFn>(SYMBOL_API_VERSION).map_err(|_| missing(SYMBOL_API_VERSION))?;
            let found = version();
            if found != GAME_API_INFO {
                return Err(GameCodeError::OtherContract { path: source.into(), found });
            }
            let functions = GameFunctions {
                update_and_render: *library
                    .get::<GameUpdateAndRenderFn>(SYMBOL_UPDATE_AND_RENDER)
                    .map_err(|_| missing(SYMBOL_UPDATE_AND_RENDER))?,
                output_sound: *library
                    .get::<GameOutputSoundFn>(SYMBOL_OUTPUT_SOUND)
                    .map_err(|_| missing(SYMBOL_OUTPUT_SOUND))?,
                migrate_state: library.get::<GameMigrateStateFn>(SYMBOL_MIGRATE_STATE).ok().map(|f| *f),
            };
            // The state's shape is plain data returned by a function of the checked contract.
            let layout = library.get::<GameStateLayoutFn>(SYMBOL_STATE_LAYOUT).ok().map(|f| f());
            (functions, layout)
        };
        Ok(Self { _library: library, functions, state_layout })
    }
}

/// dlerror text starts with the (private copy's) path and can span lines: keep the reason.
fn one_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    match line.split_once(": ") {
        Some((path, reason)) if path.contains('/') => reason.trim().to_string(),
        _ => line.trim().to_string(),
    }
}

/// How many copies of the game library are mapped into this process right now, read from
/// `/proc/self/maps` (allocates: call it at exit, not per frame).
pub fn mapped_copies(copies_dir: &Path) -> usize {
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let dir = copies_dir.to_string_lossy();
    let mut paths: Vec<&str> = maps.lines().filter_map(|l| l.find(dir.as_ref()).map(|i| &l[i..])).collect();
    paths.sort_unstable();
    paths.dedup();
    paths.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlerror_becomes_one_line() {
        assert_eq!(one_line("/tmp/x/game-0.so: undefined symbol: foo\nmore"), "undefined symbol: foo");
    }
}
