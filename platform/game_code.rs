//! `GameCode`: loads the game library and reloads it when it changes, following DESIGN.md's
//! protocol: notice the change, wait for a complete file, copy it to a new unique file in a
//! private 0700 directory, `dlopen` the copy, check the ABI version and layout hash, resolve
//! every symbol, and only then swap and drop (`dlclose`) the old library. Any failure keeps the
//! old code running and is reported once.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use handmade_api::{
    game_output_sound_stub, game_update_and_render_stub, GameApiInfo, GameApiVersionFn, GameOutputSoundFn,
    GameUpdateAndRenderFn, GAME_API_INFO, SYMBOL_API_VERSION, SYMBOL_OUTPUT_SOUND, SYMBOL_UPDATE_AND_RENDER,
};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::elf_check::check_elf;
use crate::load_probe::{LoadProbe, ProbeResult, ProbeRun};

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
    /// Someone else could replace the file: loading it would run their code as this user.
    WritableByOthers {
        path: PathBuf,
        mode: u32,
    },
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

impl fmt::Display for GameCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GameCodeError::*;
        match self {
            Missing { path, source } => write!(f, "game library {} cannot be read: {source}", path.display()),
            NotALibrary { path, why } => {
                write!(f, "{} is not a game library: {why}", path.display())
            }
            Incomplete { path } => write!(f, "game library {} is incomplete (still being written?)", path.display()),
            PrivateCopy { path, source } => {
                write!(f, "cannot copy the game library to the private directory {}: {source}", path.display())
            }
            Open { path, message } => {
                write!(f, "cannot load game library {}: {message}", path.display())
            }
            MissingSymbol { path, symbol } => {
                write!(f, "game library {} does not export `{symbol}`", path.display())
            }
            WritableByOthers { path, mode } => write!(
                f,
                "refusing {}: it is writable by other users (mode {:o}); run `chmod go-w {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            CrashesOnLoad { path, signal } => write!(
                f,
                "game library {} crashes while loading ({} in a test process); not loaded",
                path.display(),
                crate::load_probe::signal_name(*signal)
            ),
            HangsOnLoad { path } => write!(
                f,
                "game library {} did not finish loading within {} s in a test process; not loaded",
                path.display(),
                crate::load_probe::PROBE_TIMEOUT.as_secs()
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

/// The game's entry points. Plain function pointers: copy them out each frame, never keep them
/// across a reload.
#[derive(Clone, Copy)]
pub struct GameFunctions {
    pub update_and_render: GameUpdateAndRenderFn,
    pub output_sound: GameOutputSoundFn,
}

impl GameFunctions {
    /// What runs while no game is loaded: a blank frame and silence.
    pub const STUBS: Self =
        Self { update_and_render: game_update_and_render_stub, output_sound: game_output_sound_stub };
}

/// What identifies one version of the library file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
    /// A `chmod` that makes an unreadable library readable again is worth another try.
    mode: u32,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = fs::metadata(path)?;
        Ok(Self { modified: meta.modified()?, len: meta.len(), inode: meta.ino(), mode: meta.mode() })
    }
}

struct LoadedLibrary {
    // Dropping it `dlclose`s the copy; the functions below must not be called after that.
    _library: Library,
    functions: GameFunctions,
}

/// What `reload_if_changed` / `force_reload` did this frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    Unchanged,
    /// A new library is being test-loaded in a probe process (started this frame or running).
    Checking,
    /// The library has been gone for a while (said once, this frame).
    Missing,
    Reloaded {
        load_time: Duration,
    },
    Failed,
}

pub struct GameCode {
    source: PathBuf,
    copies: tempfile::TempDir,
    copies_made: u64,
    loaded: Option<LoadedLibrary>,
    /// The stamp of the file the loaded library was copied from.
    loaded_stamp: Option<FileStamp>,
    /// A changed stamp seen at the previous poll; loaded once it holds still for one poll.
    pending: Option<FileStamp>,
    /// The stamp whose failure was already reported, so it is reported once.
    failed_stamp: Option<FileStamp>,
    /// Consecutive polls that found no file at `source`.
    missing_polls: u32,
    generation: u64,
    /// The library that ran before the last swap, kept loaded for `ROLLBACK_WINDOW` frames so a
    /// new build that crashes at once can be rolled back to it.
    previous: Option<LoadedLibrary>,
    frames_since_swap: u32,
    /// The probe program, if built (tests and embedders without it load directly).
    probe: Option<LoadProbe>,
    /// A probe in flight: the private copy it is loading and the stamp it was copied at.
    probing: Option<(ProbeRun, PathBuf, FileStamp)>,
    /// The last stamp a probe passed: forced reloads of an unchanged file skip the probe.
    probed_ok: Option<FileStamp>,
}

/// Polls (frames) a vanished library may stay away before the user is told.
const MISSING_POLLS_BEFORE_WARNING: u32 = 30;

/// Frames after a swap during which a crash rolls back to the previous library.
pub const ROLLBACK_WINDOW: u32 = 60;

impl GameCode {
    /// Loads the library at `source`. Fails (with one clear line) if it cannot be used.
    pub fn load(source: &Path) -> Result<Self, GameCodeError> {
        let copies = private_dir("handmade-game-")
            .map_err(|source| GameCodeError::PrivateCopy { path: std::env::temp_dir(), source })?;
        let mut code = Self {
            source: source.to_path_buf(),
            copies,
            copies_made: 0,
            loaded: None,
            loaded_stamp: None,
            pending: None,
            failed_stamp: None,
            missing_polls: 0,
            generation: 0,
            previous: None,
            frames_since_swap: 0,
            probe: LoadProbe::find(),
            probing: None,
            probed_ok: None,
        };
        if code.probe.is_none() {
            log::debug!("no handmade-probe beside this executable: new libraries are loaded untested");
        }
        let stamp = FileStamp::of(source).map_err(|e| GameCodeError::Missing { path: source.into(), source: e })?;
        code.swap_in(stamp, &mut || {})?;
        code.previous = None;
        Ok(code)
    }

    /// No game at all: stubs only (used by tests of the loop and when loading is not wanted).
    pub fn functions(&self) -> GameFunctions {
        self.loaded.as_ref().map_or(GameFunctions::STUBS, |l| l.functions)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn copies_dir(&self) -> &Path {
        self.copies.path()
    }

    /// How many times a library has been swapped in (1 after the first load).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Polls the source file; reloads once a changed file has held still for one poll and is a
    /// complete ELF file. Costs one `stat` when nothing changed. `before_swap` runs after the new
    /// library passed every check, just before it replaces the running one.
    pub fn reload_if_changed(&mut self, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        let stamp = match FileStamp::of(&self.source) {
            Ok(stamp) => stamp,
            // Deleted or being replaced: keep running the loaded code and look again later.
            // A linker replaces the file in a blink; say so only if it stays gone.
            Err(e) => {
                self.missing_polls = self.missing_polls.saturating_add(1);
                if self.missing_polls == MISSING_POLLS_BEFORE_WARNING {
                    log::warn!(
                        "game library {} is gone ({e}); the loaded code keeps running until it is back",
                        self.source.display()
                    );
                    return ReloadOutcome::Missing;
                }
                return ReloadOutcome::Unchanged;
            }
        };
        self.missing_polls = 0;
        if let Some(outcome) = self.poll_probe(stamp, before_swap) {
            return outcome;
        }
        if Some(stamp) == self.loaded_stamp || Some(stamp) == self.failed_stamp {
            return ReloadOutcome::Unchanged;
        }
        if self.pending != Some(stamp) {
            self.pending = Some(stamp);
            return ReloadOutcome::Unchanged;
        }
        let start = Instant::now();
        let copy = match self.make_copy() {
            Err(GameCodeError::Incomplete { .. }) => return ReloadOutcome::Unchanged,
            Err(e) => return self.report(stamp, Err(e)),
            Ok(copy) => copy,
        };
        match (&self.probe, self.probed_ok == Some(stamp)) {
            (Some(probe), false) => match probe.start(&copy) {
                Ok(run) => {
                    self.probing = Some((run, copy, stamp));
                    ReloadOutcome::Checking
                }
                Err(e) => {
                    let _ = fs::remove_file(&copy);
                    let message = e.to_string();
                    self.report(stamp, Err(GameCodeError::Probe { path: self.source.clone(), message }))
                }
            },
            _ => {
                let result = self.install(&copy, stamp, before_swap).map(|()| start.elapsed());
                self.report(stamp, result)
            }
        }
    }

    /// Follows a probe in flight: `None` when there is none (or it was for an older file).
    fn poll_probe(&mut self, stamp: FileStamp, before_swap: &mut dyn FnMut()) -> Option<ReloadOutcome> {
        let (run, copy, probed) = self.probing.as_mut()?;
        if *probed != stamp {
            let _ = fs::remove_file(&*copy);
            self.probing = None; // the file changed again: that one is stale (the drop kills it)
            return None;
        }
        let verdict = run.poll();
        if matches!(verdict, ProbeResult::Running) {
            return Some(ReloadOutcome::Checking);
        }
        let (_, copy, _) = self.probing.take()?;
        let start = Instant::now();
        let result = match self.verdict_to_result(verdict, stamp) {
            Ok(()) => self.install(&copy, stamp, before_swap).map(|()| start.elapsed()),
            Err(e) => {
                let _ = fs::remove_file(&copy);
                Err(e)
            }
        };
        Some(self.report(stamp, result))
    }

    fn verdict_to_result(&mut self, verdict: ProbeResult, stamp: FileStamp) -> Result<(), GameCodeError> {
        let path = self.source.clone();
        match verdict {
            ProbeResult::Passed => {
                self.probed_ok = Some(stamp);
                Ok(())
            }
            ProbeResult::Crashed { signal } => Err(GameCodeError::CrashesOnLoad { path, signal }),
            ProbeResult::Hung => Err(GameCodeError::HangsOnLoad { path }),
            ProbeResult::Running => Err(GameCodeError::Probe { path, message: "the probe is still running".into() }),
            ProbeResult::Broken(message) => Err(GameCodeError::Probe { path, message }),
        }
    }

    /// Reloads now, whether or not the file changed (the full protocol: copy, load, check, swap).
    pub fn force_reload(&mut self, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        match FileStamp::of(&self.source) {
            // A file that failed (or crashed and was rolled back) waits for a new build.
            Ok(stamp) if Some(stamp) == self.failed_stamp => ReloadOutcome::Unchanged,
            Ok(stamp) => {
                let result = self.try_swap(stamp, before_swap);
                self.report(stamp, result)
            }
            Err(source) => {
                let error = GameCodeError::Missing { path: self.source.clone(), source };
                log::warn!("reload failed, keeping the loaded game: {error}");
                ReloadOutcome::Failed
            }
        }
    }

    fn try_swap(&mut self, stamp: FileStamp, before_swap: &mut dyn FnMut()) -> Result<Duration, GameCodeError> {
        let start = Instant::now();
        self.swap_in(stamp, before_swap)?;
        Ok(start.elapsed())
    }

    fn report(&mut self, stamp: FileStamp, result: Result<Duration, GameCodeError>) -> ReloadOutcome {
        self.pending = None;
        match result {
            Ok(load_time) => ReloadOutcome::Reloaded { load_time },
            Err(error) => {
                if self.failed_stamp != Some(stamp) {
                    log::warn!("reload failed, keeping the loaded game: {error}");
                }
                self.failed_stamp = Some(stamp);
                ReloadOutcome::Failed
            }
        }
    }

    /// The whole protocol at once (start-up and forced reloads): copy, probe unless this file
    /// already passed, load, check, swap.
    fn swap_in(&mut self, stamp: FileStamp, before_swap: &mut dyn FnMut()) -> Result<(), GameCodeError> {
        let copy = self.make_copy()?;
        if let (Some(probe), false) = (&self.probe, self.probed_ok == Some(stamp)) {
            let verdict = probe.run(&copy);
            if let Err(e) = self.verdict_to_result(verdict, stamp) {
                let _ = fs::remove_file(&copy);
                return Err(e);
            }
        }
        self.install(&copy, stamp, before_swap)
    }

    /// Copies the source to a new name in the private directory and checks the copy: what is
    /// checked is then exactly what is loaded, even if the source changes again meanwhile.
    fn make_copy(&mut self) -> Result<PathBuf, GameCodeError> {
        refuse_writable_by_others(&self.source)?;
        let copy = self.copies.path().join(format!("game-{}.so", self.copies_made));
        self.copies_made += 1;
        // Opened apart from the copy so an unreadable library and an unwritable copy directory
        // are told apart; io::copy still uses copy_file_range between two files.
        let mut from = fs::File::open(&self.source)
            .map_err(|source| GameCodeError::Missing { path: self.source.clone(), source })?;
        let private = |source| GameCodeError::PrivateCopy { path: copy.clone(), source };
        let mut to = fs::File::create(&copy).map_err(private)?;
        if let Err(e) = std::io::copy(&mut from, &mut to) {
            let _ = fs::remove_file(&copy);
            return Err(private(e));
        }
        drop(to);
        if let Err(e) = check_elf(&copy, &self.source) {
            let _ = fs::remove_file(&copy);
            return Err(e);
        }
        Ok(copy)
    }

    /// Loads the copy, checks the contract, resolves every symbol, then swaps.
    fn install(&mut self, copy: &Path, stamp: FileStamp, before_swap: &mut dyn FnMut()) -> Result<(), GameCodeError> {
        let loaded = open_checked(copy, &self.source);
        // The mapping keeps the code alive; the directory stays empty between reloads.
        let _ = fs::remove_file(copy);
        let loaded = loaded?;
        before_swap();
        // The running library becomes the rollback target; the one before it is dlclosed here.
        self.previous = self.loaded.replace(loaded);
        self.frames_since_swap = 0;
        self.loaded_stamp = Some(stamp);
        self.failed_stamp = None;
        self.generation += 1;
        Ok(())
    }
}

impl GameCode {
    /// The writer says the file is complete (cargo finished): skip the one-poll settle.
    pub fn mark_settled(&mut self) {
        self.pending = FileStamp::of(&self.source).ok();
    }

    /// Goes back to the library that ran before the last swap (the new one is dlclosed). The
    /// file that crashed is not loaded again until it changes.
    pub fn roll_back(&mut self) -> bool {
        let Some(previous) = self.previous.take() else { return false };
        self.loaded = Some(previous);
        self.failed_stamp = self.loaded_stamp;
        self.generation += 1;
        true
    }

    /// Called once per frame: closes the rollback target when the window has passed. Returns
    /// true on the frame that closed it.
    pub fn end_frame(&mut self) -> bool {
        if self.previous.is_none() {
            return false;
        }
        self.frames_since_swap += 1;
        if self.frames_since_swap < ROLLBACK_WINDOW {
            return false;
        }
        self.previous = None;
        true
    }
}

/// Opens `copy`, checks the contract and resolves every symbol. `source` names it in errors.
fn open_checked(copy: &Path, source: &Path) -> Result<LoadedLibrary, GameCodeError> {
    // SAFETY: loading runs the library's initialisers. The file is a copy of the game library
    // the user chose, placed in our private 0700 directory, so nobody else could swap it.
    let library = unsafe { Library::open(Some(copy), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|e| GameCodeError::Open { path: source.into(), message: one_line(&e.to_string()) })?;
    let missing = |symbol: &'static [u8]| GameCodeError::MissingSymbol {
        path: source.into(),
        symbol: std::str::from_utf8(&symbol[..symbol.len() - 1]).unwrap_or("?"),
    };
    // SAFETY: each symbol is looked up with the exact type the contract declares for it; the
    // version check below refuses a library whose contract (and so whose types) differ.
    let functions = unsafe {
        let version = *library.get::<GameApiVersionFn>(SYMBOL_API_VERSION).map_err(|_| missing(SYMBOL_API_VERSION))?;
        let found = version();
        if found != GAME_API_INFO {
            return Err(GameCodeError::OtherContract { path: source.into(), found });
        }
        GameFunctions {
            update_and_render: *library
                .get::<GameUpdateAndRenderFn>(SYMBOL_UPDATE_AND_RENDER)
                .map_err(|_| missing(SYMBOL_UPDATE_AND_RENDER))?,
            output_sound: *library
                .get::<GameOutputSoundFn>(SYMBOL_OUTPUT_SOUND)
                .map_err(|_| missing(SYMBOL_OUTPUT_SOUND))?,
        }
    };
    Ok(LoadedLibrary { _library: library, functions })
}

/// dlerror text starts with the (private copy's) path and can span lines: keep the reason.
fn one_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    match line.split_once(": ") {
        Some((path, reason)) if path.contains('/') => reason.trim().to_string(),
        _ => line.trim().to_string(),
    }
}

/// A new directory in the temporary directory with an unpredictable name and mode 0700 from
/// the moment it exists (the umask would otherwise leave it 0755), so nobody else can plant a
/// library where we `dlopen` or list what we record.
pub fn private_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new().prefix(prefix).permissions(fs::Permissions::from_mode(0o700)).tempdir()
}

/// A file others can write, or a directory others can write without the sticky bit (so they
/// could rename their own file over ours), lets another user choose the code we run.
/// Group write counts only for a shared group: with user private groups (gid == uid, the
/// umask-002 default of many distributions) the group is the owner alone.
pub fn refuse_writable_by_others(path: &Path) -> Result<(), GameCodeError> {
    let missing = |source| GameCodeError::Missing { path: path.into(), source };
    let others_may_write = |meta: &fs::Metadata| {
        let shared_group = meta.gid() != meta.uid();
        meta.mode() & 0o002 != 0 || (shared_group && meta.mode() & 0o020 != 0)
    };
    let file = fs::metadata(path).map_err(missing)?;
    if others_may_write(&file) {
        return Err(GameCodeError::WritableByOthers { path: path.into(), mode: file.mode() });
    }
    let dir_path = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = fs::metadata(dir_path).map_err(missing)?;
    if others_may_write(&dir) && dir.mode() & 0o1000 == 0 {
        return Err(GameCodeError::WritableByOthers { path: dir_path.into(), mode: dir.mode() });
    }
    Ok(())
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
    fn rejects_files_that_are_not_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.so");
        fs::write(&text, b"hello, this is not ELF at all, but long enough to hold a header.....").unwrap();
        let err = GameCode::load(&text).err().unwrap();
        assert!(err.to_string().contains("no ELF magic number"), "{err}");
        let missing = GameCode::load(&dir.path().join("nope.so")).err().unwrap();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");
    }

    #[test]
    fn libraries_others_can_replace_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libgame.so");
        fs::write(&lib, b"\x7fELF").unwrap();
        fs::set_permissions(&lib, fs::Permissions::from_mode(0o666)).unwrap();
        let err = GameCode::load(&lib).err().unwrap().to_string();
        assert!(err.contains("writable by other users (mode 666)") && err.contains("chmod go-w"), "{err}");
        fs::set_permissions(&lib, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = GameCode::load(&lib).err().unwrap().to_string();
        assert!(err.contains("writable by other users (mode 777)"), "{err}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(refuse_writable_by_others(&lib).is_ok(), "a sticky shared directory like /tmp is fine");
    }

    #[test]
    fn the_copy_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir("handmade-test-").unwrap();
        assert_eq!(fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    /// The first `keep` bytes of this test executable (a PIE, so ET_DYN like a library).
    #[test]
    fn dlerror_becomes_one_line() {
        assert_eq!(one_line("/tmp/x/game-0.so: undefined symbol: foo\nmore"), "undefined symbol: foo");
    }
}
