//! Why a game library could not be loaded: one variant per cause, each shown as one line that
//! names the user's file (never our private copy).

use std::fmt;
use std::path::PathBuf;

use handmade_api::{GameApiInfo, GAME_API_INFO};

use super::load_probe::{signal_name, PROBE_TIMEOUT};
use crate::private_fs::UnsafePath;

#[derive(Debug)]
pub enum GameCodeError {
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    NotALibrary {
        path: PathBuf,
        why: &'static str,
    },
    Incomplete {
        path: PathBuf,
    },
    PrivateCopy {
        path: PathBuf,
        source: std::io::Error,
    },
    Open {
        path: PathBuf,
        message: String,
    },
    MissingSymbol {
        path: PathBuf,
        symbol: &'static str,
    },
    OtherContract {
        path: PathBuf,
        found: GameApiInfo,
    },
    /// Someone else could replace the file, or it is not a file at all.
    Unsafe(UnsafePath),
    /// Loading it killed the probe process (see load_probe.rs).
    CrashesOnLoad {
        path: PathBuf,
        signal: i32,
    },
    HangsOnLoad {
        path: PathBuf,
    },
    Probe {
        path: PathBuf,
        message: String,
    },
}

impl GameCodeError {
    /// Worth another try without a new file: the machine, not the library, was the problem
    /// (a full process table, a full disk for the private copy).
    pub fn is_transient(&self) -> bool {
        matches!(self, GameCodeError::PrivateCopy { .. } | GameCodeError::Probe { .. })
    }
}

impl fmt::Display for GameCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GameCodeError::*;
        match self {
            Missing { path, source } => write!(f, "game library {} cannot be read: {source}", path.display()),
            NotALibrary { path, why } => write!(f, "{} is not a game library: {why}", path.display()),
            Incomplete { path } => write!(f, "game library {} is incomplete (still being written?)", path.display()),
            PrivateCopy { path, source } => {
                write!(f, "cannot copy the game library to the private directory {}: {source}", path.display())
            }
            Open { path, message } => write!(f, "cannot load game library {}: {message}", path.display()),
            MissingSymbol { path, symbol } => write!(f, "game library {} does not export `{symbol}`", path.display()),
            Unsafe(e) => e.fmt(f),
            CrashesOnLoad { path, signal } => write!(
                f,
                "game library {} crashes while loading ({} in a test process); not loaded",
                path.display(),
                signal_name(*signal)
            ),
            HangsOnLoad { path } => write!(
                f,
                "game library {} did not finish loading within {} s in a test process; not loaded",
                path.display(),
                PROBE_TIMEOUT.as_secs()
            ),
            Probe { path, message } => write!(f, "cannot test-load {}: {message}", path.display()),
            OtherContract { path, found } => write!(
                f,
                "game library {} was built against another contract (version {}, layout {:016x}; \
                 this platform expects version {}, layout {:016x}): rebuild it",
                path.display(),
                found.version,
                found.layout_hash,
                GAME_API_INFO.version,
                GAME_API_INFO.layout_hash
            ),
        }
    }
}

impl std::error::Error for GameCodeError {}
