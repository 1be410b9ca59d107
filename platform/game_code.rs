//! `GameCode`: loads the game library and reloads it when it changes, following DESIGN.md's
//! protocol: notice the change, wait for a complete file, copy it to a new unique file in a
//! private 0700 directory, `dlopen` the copy, check the ABI version and layout hash, resolve
//! every symbol, and only then swap and drop (`dlclose`) the old library. Any failure keeps the
//! old code running and is reported once.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use handmade_api::{
    game_output_sound_stub, game_update_and_render_stub, GameApiInfo, GameApiVersionFn, GameOutputSoundFn,
    GameUpdateAndRenderFn, GAME_API_INFO, SYMBOL_API_VERSION, SYMBOL_OUTPUT_SOUND, SYMBOL_UPDATE_AND_RENDER,
};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::load_probe::{LoadProbe, ProbeResult, ProbeRun};

#[derive(Debug)]
pub enum GameCodeError {
    Missing { path: PathBuf, source: std::io::Error },
    NotALibrary { path: PathBuf, why: &'static str },
    Incomplete { path: PathBuf },
    PrivateCopy { path: PathBuf, source: std::io::Error },
    Open { path: PathBuf, message: String },
    MissingSymbol { path: PathBuf, symbol: &'static str },
    OtherContract { path: PathBuf, found: GameApiInfo },
    /// Someone else could replace the file: loading it would run their code as this user.
    WritableByOthers { path: PathBuf, mode: u32 },
    /// Loading it killed the probe process (see load_probe.rs).
    CrashesOnLoad { path: PathBuf, signal: i32 },
    HangsOnLoad { path: PathBuf },
    Probe { path: PathBuf, message: String },
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
    Reloaded { load_time: Duration },
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

    /// Checks the source and copies it to a new name in the private directory.
    fn make_copy(&mut self) -> Result<PathBuf, GameCodeError> {
        refuse_writable_by_others(&self.source)?;
        check_elf(&self.source)?;
        let copy = self.copies.path().join(format!("game-{}.so", self.copies_made));
        self.copies_made += 1;
        fs::copy(&self.source, &copy).map_err(|source| GameCodeError::PrivateCopy { path: copy.clone(), source })?;
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
    /// True while a probe process is test-loading a new library.
    pub fn is_probing(&self) -> bool {
        self.probing.is_some()
    }

    /// The writer says the file is complete (cargo finished): skip the one-poll settle.
    pub fn mark_settled(&mut self) {
        self.pending = FileStamp::of(&self.source).ok();
    }

    /// True while a just-swapped library can still be rolled back.
    pub fn can_roll_back(&self) -> bool {
        self.previous.is_some()
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

/// A complete ELF shared object ends with its section header table (the linker writes it last),
/// so a file shorter than `e_shoff + e_shnum * e_shentsize` is still being written. A complete
/// one must also have program headers the dynamic loader can follow without faulting: ld.so
/// trusts them, and a segment past the end of the file is a SIGBUS inside `dlopen` (found by
/// the `game_library` fuzz target, see tests/fuzz).
fn check_elf(path: &Path) -> Result<(), GameCodeError> {
    let missing = |source| GameCodeError::Missing { path: path.into(), source };
    let not_lib = |why| GameCodeError::NotALibrary { path: path.into(), why };
    let mut file = File::open(path).map_err(missing)?;
    let len = file.metadata().map_err(missing)?.len();
    let mut header = [0u8; 64];
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(missing(e)),
        }
    }
    let magic = b"\x7fELF";
    if header[..got.min(4)] != magic[..got.min(4)] {
        return Err(not_lib("no ELF magic number"));
    }
    if got < header.len() {
        // Empty, or a prefix of an ELF header: a linker is still writing it.
        return Err(GameCodeError::Incomplete { path: path.into() });
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(not_lib("not a 64-bit little-endian ELF file"));
    }
    if u16::from_le_bytes([header[16], header[17]]) != 3 {
        return Err(not_lib("an ELF file but not a shared object"));
    }
    let shoff = u64::from_le_bytes(header[0x28..0x30].try_into().expect("8 bytes"));
    let shentsize = u64::from(u16::from_le_bytes([header[0x3a], header[0x3b]]));
    let shnum = u64::from(u16::from_le_bytes([header[0x3c], header[0x3d]]));
    let end = shoff.checked_add(shentsize * shnum).ok_or_else(|| not_lib("corrupt section header offset"))?;
    if end > len {
        return Err(GameCodeError::Incomplete { path: path.into() });
    }
    let segments = read_segments(&mut file, &header, len).map_err(not_lib)?;
    check_segments(&segments, len).map_err(not_lib)
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const PF_W: u32 = 2;
/// Real libraries have about a dozen program headers; this bounds what `check_elf` reads.
const MAX_SEGMENTS: usize = 128;
/// A game library is a few MiB at most; a larger address span is a corrupt header.
const MAX_SPAN: u64 = 1 << 30;

/// One ELF64 program header (the fields `check_segments` needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
}

impl Segment {
    fn parse(entry: &[u8]) -> Self {
        let word = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes"));
        Self { kind: half(0), flags: half(4), offset: word(8), vaddr: word(16), file_size: word(32), mem_size: word(40), align: word(48) }
    }

    fn file_end(&self) -> Option<u64> {
        self.offset.checked_add(self.file_size)
    }

    fn mem_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.mem_size)
    }
}

/// Reads the program header table named by the ELF header, after checking its place and size.
fn read_segments(file: &mut File, header: &[u8; 64], len: u64) -> Result<Vec<Segment>, &'static str> {
    use std::io::{Seek, SeekFrom};
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().expect("8 bytes"));
    let entry_size = usize::from(u16::from_le_bytes([header[0x36], header[0x37]]));
    let count = usize::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    if entry_size != 56 {
        return Err("corrupt program headers (wrong entry size)");
    }
    if count == 0 || count > MAX_SEGMENTS {
        return Err("corrupt program headers (no segments, or implausibly many)");
    }
    let table_len = (count * entry_size) as u64;
    if phoff.checked_add(table_len).map_or(true, |end| end > len) {
        return Err("corrupt program headers (the table lies outside the file)");
    }
    let mut table = vec![0u8; count * entry_size];
    file.seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut table))
        .map_err(|_| "program headers cannot be read")?;
    Ok(table.chunks_exact(entry_size).map(Segment::parse).collect())
}

/// What ld.so needs to map the library without touching memory it did not map: loadable
/// segments inside the file, sane alignment, in address order, and the segments it reads at
/// load time (dynamic section, notes, TLS image, the header table itself) inside a loaded one.
fn check_segments(segments: &[Segment], len: u64) -> Result<(), &'static str> {
    let loads: Vec<&Segment> = segments.iter().filter(|s| s.kind == PT_LOAD).collect();
    let (Some(first), Some(last)) = (loads.first(), loads.last()) else {
        return Err("corrupt program headers (no loadable segment)");
    };
    for (i, load) in loads.iter().enumerate() {
        check_load(load, len)?;
        if i > 0 && load.vaddr < loads[i - 1].vaddr {
            return Err("corrupt program headers (loadable segments out of address order)");
        }
    }
    let span = last.mem_end().and_then(|end| end.checked_sub(first.vaddr & !0xfff));
    if span.map_or(true, |span| span > MAX_SPAN) {
        return Err("corrupt program headers (segments span more than 1 GiB)");
    }
    if segments.iter().filter(|s| s.kind == PT_DYNAMIC).count() != 1 {
        return Err("not a dynamically linked library (needs exactly one dynamic segment)");
    }
    let read_at_load = [PT_DYNAMIC, PT_NOTE, PT_PHDR, PT_TLS, PT_GNU_PROPERTY];
    for segment in segments.iter().filter(|s| read_at_load.contains(&s.kind) && s.mem_size > 0) {
        if segment.file_end().map_or(true, |end| end > len) || segment.file_size > segment.mem_size {
            return Err("corrupt program headers (a segment lies outside the file)");
        }
        let end = segment.mem_end().ok_or("corrupt program headers (a segment wraps around)")?;
        if !loads.iter().any(|l| l.vaddr <= segment.vaddr && l.mem_end().is_some_and(|e| end <= e)) {
            return Err("corrupt program headers (a segment the loader reads is not loaded)");
        }
    }
    Ok(())
}

/// One PT_LOAD: its bytes in the file, no more file than memory, a power-of-two alignment
/// that file offset and address agree on (what mmap needs).
fn check_load(load: &Segment, len: u64) -> Result<(), &'static str> {
    if load.file_end().map_or(true, |end| end > len) {
        return Err("corrupt program headers (a loadable segment reaches past the end of the file)");
    }
    // Only a writable segment has zero-filled memory (.bss) beyond its file bytes; a short
    // code or read-only segment would run or read zeros instead of what the linker wrote.
    let writable = load.flags & PF_W != 0;
    if load.file_size > load.mem_size || (!writable && load.file_size != load.mem_size) || load.mem_end().is_none() {
        return Err("corrupt program headers (a loadable segment has bad sizes)");
    }
    if load.align > 1 && (!load.align.is_power_of_two() || load.vaddr % load.align != load.offset % load.align) {
        return Err("corrupt program headers (a loadable segment is misaligned)");
    }
    Ok(())
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
    fn truncated_elf_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let own = fs::read("/proc/self/exe").unwrap();
        let path = dir.path().join("half.so");
        let mut half = own[..own.len() / 2].to_vec();
        half[16] = 3; // pretend to be ET_DYN so only the length is wrong
        fs::write(&path, &half).unwrap();
        assert!(matches!(check_elf(&path), Err(GameCodeError::Incomplete { .. })));
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
    fn own_head(keep: usize) -> Vec<u8> {
        let mut own = fs::read("/proc/self/exe").unwrap();
        own.truncate(keep);
        own
    }

    #[test]
    fn linker_output_passes_the_program_header_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.so");
        fs::write(&path, own_head(usize::MAX)).unwrap();
        check_elf(&path).unwrap();
    }

    /// Regression (fuzz target `game_library`, seed `elf-head-no-sections`): a truncated ELF
    /// whose section table was zeroed passed `check_elf`, and `dlopen` died of SIGBUS zeroing
    /// the tail of a segment that lies past the end of the file.
    #[test]
    fn segments_past_the_end_of_the_file_are_refused_before_dlopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.so");
        let mut cut = own_head(4096);
        cut[0x28..0x30].fill(0); // e_shoff
        cut[0x3c..0x3e].fill(0); // e_shnum
        fs::write(&path, &cut).unwrap();
        let err = GameCode::load(&path).err().unwrap().to_string();
        assert!(err.contains("past the end of the file") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn garbled_program_headers_give_one_reason() {
        let load = Segment { kind: PT_LOAD, flags: PF_W, offset: 0, vaddr: 0, file_size: 0x2000, mem_size: 0x3000, align: 0x1000 };
        let dynamic = Segment { kind: PT_DYNAMIC, flags: PF_W, offset: 0x1000, vaddr: 0x1000, file_size: 0x100, mem_size: 0x100, align: 8 };
        assert_eq!(check_segments(&[load, dynamic], 0x2000), Ok(()));
        let reason = |segments: &[Segment]| check_segments(segments, 0x2000).unwrap_err();
        assert!(reason(&[dynamic]).contains("no loadable segment"));
        assert!(reason(&[load]).contains("exactly one dynamic"));
        assert!(reason(&[load, Segment { vaddr: 0x5000, ..dynamic }]).contains("not loaded"));
        assert!(reason(&[load, Segment { offset: u64::MAX, ..dynamic }]).contains("outside the file"));
        assert!(reason(&[Segment { align: 0x1800, ..load }, dynamic]).contains("misaligned"));
        assert!(reason(&[Segment { vaddr: 0x1000, ..load }, load, dynamic]).contains("address order"));
        assert!(reason(&[Segment { mem_size: 1 << 40, ..load }, dynamic]).contains("1 GiB"));
        assert!(reason(&[Segment { flags: 5, ..load }, dynamic]).contains("bad sizes"), "short code segment");
    }

    #[test]
    fn program_header_table_must_fit_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phdr.so");
        let mut own = own_head(usize::MAX);
        let len = own.len() as u64;
        own[0x20..0x28].copy_from_slice(&(len - 8).to_le_bytes()); // e_phoff near the end
        fs::write(&path, &own).unwrap();
        let err = check_elf(&path).unwrap_err().to_string();
        assert!(err.contains("outside the file"), "{err}");
        own[0x36] = 32; // e_phentsize
        fs::write(&path, &own).unwrap();
        assert!(check_elf(&path).unwrap_err().to_string().contains("wrong entry size"));
    }

    #[test]
    fn dlerror_becomes_one_line() {
        assert_eq!(one_line("/tmp/x/game-0.so: undefined symbol: foo\nmore"), "undefined symbol: foo");
    }
}
