//! Loading and reloading the game library (the reload protocol): notice a changed file, wait
//! until it is complete, copy it to a new unique file in a private 0700 directory, test-load
//! the copy in a throwaway process, `dlopen` it, check the contract, resolve every symbol, and
//! only then swap, keeping the previous library for a rollback. Any failure keeps the running
//! code and is said once. Like cr.h, the state is a few fields and one `Pending` enum.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use handmade_api::GameStateLayout;

mod elf_check;
mod error;
mod library;
mod load_probe;
mod stamp_watch;

pub use error::GameCodeError;
use library::{code_in_use, CodeInUse};
pub use library::{mapped_copies, platform_thread, GameFunctions};
pub use load_probe::{LoadProbe, ProbeResult, ProbeRun};

use crate::private_fs::{non_file_kind, private_dir, refuse_unsafe, sweep_abandoned};
use elf_check::{check_elf, ElfError};
use library::LoadedLibrary;
use stamp_watch::StampWatch;

/// Polls (frames) a vanished library may stay away before the user is told.
const MISSING_POLLS_BEFORE_WARNING: u32 = 30;

/// Frames after a swap during which a crash rolls back to the previous library.
pub const ROLLBACK_WINDOW: u32 = 60;

/// The longest wait between retries of a transient failure, in polls (frames).
const MAX_RETRY_POLLS: u32 = 64;

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

/// What the reloader is waiting for. Exactly one of these at a time.
enum Pending {
    /// Nothing new on disk.
    Idle,
    /// A changed stamp seen at the previous poll; loaded once it holds still for one poll.
    Settling(FileStamp),
    /// A test load of this copy runs in a throwaway process.
    Probing { run: ProbeRun, copy: PathBuf, stamp: FileStamp },
    /// This stamp was refused or is still incomplete (said once): wait until the file changes.
    Parked(FileStamp),
    /// A transient failure (no process slot, no disk for the copy): try the same file again.
    Retry { stamp: FileStamp, polls_left: u32, backoff: u32 },
    /// The file has been gone for this many polls.
    Missing(u32),
    /// The rebuild watcher already copied, checked and test-loaded this build on its own
    /// thread (`Preparer`): it is installed at the next poll, without a probe frame.
    Prepared(Prepared),
}

/// The library running now, and the file version it was copied from.
struct Current {
    library: LoadedLibrary,
    stamp: FileStamp,
}

/// What became of a build the rebuild watcher reported (`take_prepared`, `mark_settled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildTaken {
    /// On its way in: the next polls load it.
    New,
    /// The per-frame poll, which can see a file before its build has reported, already loaded
    /// this version.
    AlreadyRunning,
    /// The per-frame poll already tried this version and refused it (and said why, once): it
    /// waits for the next build, as it would have.
    AlreadyRefused,
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
        shape: Option<ShapeChange>,
    },
    /// A new failure (said once, this frame).
    Failed,
    /// An attempt that loaded nothing and is no new failure: the file is still incomplete, or
    /// a transient failure already said failed again. (Its checks allocate: not a quiet frame.)
    Waiting,
}

/// The new library's persistent state has another shape than the old one's: its bytes must
/// be migrated or re-initialised, never read as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeChange {
    /// What the old library reported (`None`: it did not say, so nothing can be assumed).
    pub old: Option<GameStateLayout>,
    pub new: Option<GameStateLayout>,
}

pub struct GameCode {
    source: PathBuf,
    copies: Copies,
    probe: Option<LoadProbe>,
    current: Option<Current>,
    /// The library that ran before the last swap, and frames since: a new build that crashes
    /// within `ROLLBACK_WINDOW` frames goes back to it.
    previous: Option<(LoadedLibrary, u32)>,
    pending: Pending,
    retired: Retired,
    /// The source's stamp, polled on a thread of its own once `watch_source` started it (the
    /// frame loop does); without it `stamp` asks the file system.
    watch: Option<StampWatch>,
    /// The watch thread's poll count that is sure to have looked after the last install: a
    /// build installed from a fresher look (the watcher's preparation) must not be taken for
    /// a change by a watch that has not seen it yet.
    fresh_after: u64,
}

/// Libraries swapped out for good. One is unmapped only once no other thread runs its code (a
/// loader thread the game started would crash the moment its code vanished); one still in use
/// stays mapped for the rest of the run, said once.
#[derive(Default)]
struct Retired {
    /// Waiting for the check, with how many checks could not tell.
    waiting: Vec<(LoadedLibrary, u32)>,
    kept: Vec<LoadedLibrary>,
    /// One was added this frame: the check waits for the next frame, so a reload frame does
    /// not also pay for it.
    added_this_frame: bool,
}

impl Drop for GameCode {
    /// The libraries still loaded are unmapped on the way out, unless a thread still runs their
    /// code (then the process ends with them mapped: unmapping would crash that thread first).
    fn drop(&mut self) {
        let loaded = self.current.take().map(|c| c.library).into_iter().chain(self.previous.take().map(|(l, _)| l));
        for library in loaded {
            if code_in_use(&library.copy) != CodeInUse::No {
                std::mem::forget(library);
            }
        }
    }
}

impl Drop for Retired {
    /// At exit a kept library is still running a thread: unmapping it now would crash that
    /// thread before the process is gone. Those still waiting for their check might be too.
    fn drop(&mut self) {
        for library in self.kept.drain(..).chain(self.waiting.drain(..).map(|(l, _)| l)) {
            std::mem::forget(library);
        }
    }
}

impl Retired {
    fn add(&mut self, library: LoadedLibrary) {
        self.waiting.push((library, 0));
        self.added_this_frame = true;
    }
}

/// Checks that could not tell (a thread was running) before a library is kept to be safe.
const RETIRE_TRIES: u32 = 10;

/// How the private directories of loaded copies are named (before the pid and a random part).
const COPIES_PREFIX: &str = "handmade-game-";

/// The private directory the loaded copies live in, and a counter for unique names.
struct Copies {
    dir: tempfile::TempDir,
    made: u64,
}

impl GameCode {
    /// Loads the library at `source`. Fails (with one clear line) if it cannot be used.
    pub fn load(source: &Path) -> Result<Self, GameCodeError> {
        let swept = sweep_abandoned(&std::env::temp_dir(), COPIES_PREFIX);
        if swept > 0 {
            let dirs = if swept == 1 { "directory" } else { "directories" };
            log::info!("removed {swept} {dirs} of library copies left by runs that were killed");
        }
        let dir = private_dir(COPIES_PREFIX)
            .map_err(|source| GameCodeError::PrivateCopy { path: std::env::temp_dir(), source })?;
        let probe = LoadProbe::find();
        if probe.is_none() {
            log::debug!("no handmade-probe beside this executable: new libraries are loaded untested");
        }
        let mut code = Self {
            source: source.to_path_buf(),
            copies: Copies { dir, made: 0 },
            probe,
            current: None,
            previous: None,
            pending: Pending::Idle,
            retired: Retired::default(),
            watch: None,
            fresh_after: 0,
        };
        let stamp = code.stamp_now().map_err(|e| GameCodeError::Missing { path: source.into(), source: e })?;
        code.load_now(stamp, &mut || {})?;
        code.previous = None;
        Ok(code)
    }

    /// The entry points of the running library.
    pub fn functions(&self) -> GameFunctions {
        self.current.as_ref().map_or(GameFunctions::STUBS, |c| c.library.functions)
    }

    /// The running library's state fingerprint (`game_state_layout`), 0 if it does not say.
    pub fn state_fingerprint(&self) -> u64 {
        self.current.as_ref().and_then(|c| c.library.state_layout).map_or(0, |l| l.fingerprint)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A changed library is on its way in: seen and holding still for a poll, being
    /// test-loaded in the probe, or prepared by the rebuild watcher for the next poll. (Not a
    /// retry after a transient failure, which may wait long.)
    pub fn swap_pending(&self) -> bool {
        matches!(self.pending, Pending::Settling(_) | Pending::Probing { .. } | Pending::Prepared(_))
    }

    pub fn copies_dir(&self) -> &Path {
        self.copies.dir.path()
    }

    /// From here on the source's stamp is polled on a thread of its own, and the per-frame
    /// poll (`reload_if_changed`) makes no system call while nothing changed.
    pub fn watch_source(&mut self) -> std::io::Result<()> {
        self.watch = Some(StampWatch::start(&self.source)?);
        Ok(())
    }

    /// The source's stamp: what the watch thread saw last (`None` while it is publishing),
    /// or, without a watch, a `stat` now.
    fn stamp(&self) -> Option<std::io::Result<FileStamp>> {
        match &self.watch {
            Some(watch) => watch.stamp(),
            None => Some(FileStamp::of(&self.source)),
        }
    }

    /// The source's stamp now: the watch thread's, or a `stat` if it is publishing.
    fn stamp_now(&self) -> std::io::Result<FileStamp> {
        self.stamp().unwrap_or_else(|| FileStamp::of(&self.source))
    }

    /// Polls the source file; reloads once a changed file has held still for one poll and is a
    /// complete ELF file. Costs one `stat` when nothing changed, or with `watch_source` none
    /// (a read of what the watch thread saw). `before_swap` runs after the new library passed
    /// every check, just before it replaces the running one.
    pub fn reload_if_changed(&mut self, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        let lagging = self.watch.as_ref().is_some_and(|w| w.polls() < self.fresh_after);
        if lagging && !matches!(self.pending, Pending::Prepared(_)) {
            return ReloadOutcome::Unchanged;
        }
        let Some(seen) = self.stamp() else { return ReloadOutcome::Unchanged };
        let stamp = match seen {
            Ok(stamp) => stamp,
            Err(e) => return self.note_missing(&e),
        };
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Probing { run, copy, stamp: probed } if probed == stamp => {
                return self.follow_probe(run, copy, stamp, before_swap)
            }
            // The file changed again under the probe: that copy is stale (the drop kills it).
            Pending::Probing { copy, .. } => remove_copy(&copy),
            Pending::Settling(settled) if settled == stamp => return self.begin(stamp, before_swap),
            Pending::Retry { stamp: retried, polls_left: 0, backoff } if retried == stamp => {
                // Kept while trying, so a second failure waits longer and is not said again.
                self.pending = Pending::Retry { stamp, polls_left: 0, backoff };
                return self.begin(stamp, before_swap);
            }
            Pending::Retry { stamp: retried, polls_left, backoff } if retried == stamp => {
                self.pending = Pending::Retry { stamp, polls_left: polls_left - 1, backoff };
                return ReloadOutcome::Unchanged;
            }
            Pending::Parked(parked) if parked == stamp => {
                self.pending = Pending::Parked(parked);
                return ReloadOutcome::Unchanged;
            }
            Pending::Prepared(prepared) => return self.install_prepared(prepared, before_swap),
            _ => {}
        }
        if self.current.as_ref().is_some_and(|c| c.stamp == stamp) {
            return ReloadOutcome::Unchanged;
        }
        self.pending = Pending::Settling(stamp);
        ReloadOutcome::Unchanged
    }

    /// Reloads now, whether or not the file changed (the full protocol: copy, load, check, swap).
    pub fn force_reload(&mut self, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        let stamp = match self.stamp_now() {
            Ok(stamp) => stamp,
            Err(source) => {
                let error = GameCodeError::Missing { path: self.source.clone(), source };
                log::warn!("reload failed, keeping the loaded game: {error}");
                return ReloadOutcome::Failed;
            }
        };
        // A file that failed (or crashed and was rolled back) waits for a new build.
        if matches!(self.pending, Pending::Parked(parked) if parked == stamp) {
            return ReloadOutcome::Unchanged;
        }
        let start = Instant::now();
        match self.load_now(stamp, before_swap) {
            Ok(shape) => ReloadOutcome::Reloaded { load_time: start.elapsed(), shape },
            Err(e) => self.fail(stamp, e),
        }
    }

    /// The writer says the file is complete (cargo finished): skip the one-poll settle.
    pub fn mark_settled(&mut self) -> BuildTaken {
        // A look of its own (a build just ended: an event frame), not the watch thread's,
        // which may not have seen the new file yet.
        let Ok(stamp) = FileStamp::of(&self.source) else { return BuildTaken::New };
        if let Some(taken) = self.already_seen(stamp) {
            return taken;
        }
        if matches!(self.pending, Pending::Idle | Pending::Settling(_)) {
            self.pending = Pending::Settling(stamp);
            // The next poll must come from a look after this one, or it would see the old file.
            self.fresh_after = self.watch.as_ref().map_or(0, |w| w.polls() + 2);
        }
        BuildTaken::New
    }

    /// Whether the per-frame poll got to this version before its build reported: loaded it,
    /// or refused it (a failure is said once per version, so it is not tried again).
    fn already_seen(&self, stamp: FileStamp) -> Option<BuildTaken> {
        if self.current.as_ref().is_some_and(|c| c.stamp == stamp) {
            Some(BuildTaken::AlreadyRunning)
        } else if matches!(self.pending, Pending::Parked(parked) if parked == stamp) {
            Some(BuildTaken::AlreadyRefused)
        } else {
            None
        }
    }

    /// What the rebuild watcher needs to prepare a build on its own thread: the source, the
    /// private directory and the probe program.
    pub fn preparer(&self) -> Preparer {
        Preparer {
            source: self.source.clone(),
            dir: self.copies.dir.path().to_path_buf(),
            probe: self.probe.clone(),
            made: 0,
        }
    }

    /// A build the watcher prepared: installed at the next poll. A probe still running for an
    /// older stamp is stopped (the newer build wins). Dropped when the per-frame poll already
    /// loaded or refused that version (it can see the file before the build reports).
    pub fn take_prepared(&mut self, prepared: Prepared) -> BuildTaken {
        if let Some(taken) = self.already_seen(prepared.stamp) {
            return taken;
        }
        if let Pending::Probing { copy, .. } = std::mem::replace(&mut self.pending, Pending::Prepared(prepared)) {
            remove_copy(&copy);
        }
        BuildTaken::New
    }

    /// Goes back to the library that ran before the last swap (the new one is dlclosed). The
    /// file that crashed is not loaded again until it changes.
    pub fn roll_back(&mut self) -> bool {
        let Some((library, _)) = self.previous.take() else { return false };
        let crashed = self.current.as_ref().map(|c| c.stamp);
        if let (Some(current), Some(stamp)) = (self.current.as_mut(), crashed) {
            let crashed_library = std::mem::replace(&mut current.library, library);
            self.retired.add(crashed_library);
            self.pending = Pending::Parked(stamp);
        }
        true
    }

    /// Called once per frame: retires the rollback target when the window has passed, and
    /// unmaps retired libraries no thread runs. Returns true on a frame that did either.
    pub fn end_frame(&mut self) -> bool {
        if let Some((_, frames)) = self.previous.as_mut() {
            *frames += 1;
            if *frames >= ROLLBACK_WINDOW {
                let (library, _) = self.previous.take().expect("checked above");
                self.retired.add(library); // may grow the list: not a quiet frame
                self.retired.added_this_frame = false; // checked from the next frame on
                return true;
            }
        }
        if std::mem::take(&mut self.retired.added_this_frame) {
            return false;
        }
        self.unmap_retired()
    }

    fn unmap_retired(&mut self) -> bool {
        if self.retired.waiting.is_empty() {
            return false;
        }
        for (library, tries) in std::mem::take(&mut self.retired.waiting) {
            match code_in_use(&library.copy) {
                CodeInUse::No => drop(library), // dlclose
                CodeInUse::CannotTell if tries + 1 < RETIRE_TRIES => self.retired.waiting.push((library, tries + 1)),
                _ => {
                    if self.retired.kept.is_empty() {
                        log::warn!(
                            "an old game library stays mapped: a thread the game started still runs its code \
                             (unmapping it would crash that thread); stop the game's threads before a reload"
                        );
                    }
                    self.retired.kept.push(library);
                }
            }
        }
        true
    }

    /// Start-up and forced reloads: every step at once, waiting for the probe.
    fn load_now(
        &mut self,
        stamp: FileStamp,
        before_swap: &mut dyn FnMut(),
    ) -> Result<Option<ShapeChange>, GameCodeError> {
        let copy = self.copy_checked()?;
        if self.needs_probe(stamp) {
            let verdict = match self.probe.as_ref().map(|p| p.start(&copy)) {
                Some(Ok(mut run)) => run.wait(),
                Some(Err(e)) => ProbeResult::Broken(format!("cannot start the probe: {e}")),
                None => ProbeResult::Passed,
            };
            if let Err(e) = self.verdict(verdict) {
                remove_copy(&copy);
                return Err(e);
            }
        }
        self.install(&copy, stamp, before_swap)
    }

    /// A settled new file: check and copy it, then start its test load (or load it now when
    /// there is no probe program).
    fn begin(&mut self, stamp: FileStamp, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        let start = Instant::now();
        let copy = match self.copy_checked() {
            Ok(copy) => copy,
            Err(e) => return self.fail(stamp, e),
        };
        let started = match (&self.probe, self.needs_probe(stamp)) {
            (Some(probe), true) => probe.start(&copy),
            _ => {
                return match self.install(&copy, stamp, before_swap) {
                    Ok(shape) => ReloadOutcome::Reloaded { load_time: start.elapsed(), shape },
                    Err(e) => self.fail(stamp, e),
                }
            }
        };
        match started {
            Ok(run) => {
                self.pending = Pending::Probing { run, copy, stamp };
                ReloadOutcome::Checking
            }
            Err(e) => {
                remove_copy(&copy);
                let message = format!("cannot start the probe process: {e}");
                self.fail(stamp, GameCodeError::Probe { path: self.source.clone(), message })
            }
        }
    }

    fn install_prepared(&mut self, mut prepared: Prepared, before_swap: &mut dyn FnMut()) -> ReloadOutcome {
        let start = Instant::now();
        // The preparation looked at the file on the build's thread: whether this succeeds or
        // parks the file, the next poll must come from a look of the watch thread after it.
        self.fresh_after = self.watch.as_ref().map_or(0, |w| w.polls() + 2);
        let copy = std::mem::take(&mut prepared.copy);
        let result = self.install(&copy, prepared.stamp, before_swap);
        remove_copy(&copy);
        match result {
            Ok(shape) => ReloadOutcome::Reloaded { load_time: start.elapsed(), shape },
            Err(e) => self.fail(prepared.stamp, e),
        }
    }

    fn follow_probe(
        &mut self,
        mut run: ProbeRun,
        copy: PathBuf,
        stamp: FileStamp,
        before_swap: &mut dyn FnMut(),
    ) -> ReloadOutcome {
        let verdict = run.poll();
        if matches!(verdict, ProbeResult::Running) {
            self.pending = Pending::Probing { run, copy, stamp };
            return ReloadOutcome::Checking;
        }
        let start = Instant::now();
        let result = self.verdict(verdict).and_then(|()| self.install(&copy, stamp, before_swap));
        remove_copy(&copy);
        match result {
            Ok(shape) => ReloadOutcome::Reloaded { load_time: start.elapsed(), shape },
            Err(e) => self.fail(stamp, e),
        }
    }

    /// A forced reload of the file already running skips the probe: it passed once.
    fn needs_probe(&self, stamp: FileStamp) -> bool {
        self.probe.is_some() && !self.current.as_ref().is_some_and(|c| c.stamp == stamp)
    }

    fn verdict(&self, verdict: ProbeResult) -> Result<(), GameCodeError> {
        let path = self.source.clone();
        match verdict {
            ProbeResult::Passed => Ok(()),
            ProbeResult::Crashed { signal } => Err(GameCodeError::CrashesOnLoad { path, signal }),
            ProbeResult::Hung => Err(GameCodeError::HangsOnLoad { path }),
            ProbeResult::Running => Err(GameCodeError::Probe { path, message: "the probe is still running".into() }),
            ProbeResult::Broken(message) => Err(GameCodeError::Probe { path, message }),
        }
    }

    /// Says a failure once per file version. A transient one is retried with a growing wait;
    /// anything else waits for the file to change.
    fn fail(&mut self, stamp: FileStamp, error: GameCodeError) -> ReloadOutcome {
        let said = match &self.pending {
            Pending::Parked(s) | Pending::Retry { stamp: s, .. } => *s == stamp,
            _ => false,
        };
        let backoff = match self.pending {
            Pending::Retry { stamp: s, backoff, .. } if s == stamp => (backoff * 2).min(MAX_RETRY_POLLS),
            _ => 1,
        };
        if let GameCodeError::Incomplete { .. } = error {
            if !said {
                log::info!("{error}; waiting for it to change");
            }
            self.pending = Pending::Parked(stamp);
            return ReloadOutcome::Waiting;
        }
        if error.is_transient() {
            self.pending = Pending::Retry { stamp, polls_left: backoff, backoff };
            if said {
                return ReloadOutcome::Waiting;
            }
            log::warn!("reload failed, keeping the loaded game: {error}; retrying");
        } else {
            log::warn!("reload failed, keeping the loaded game: {error}");
            self.pending = Pending::Parked(stamp);
        }
        ReloadOutcome::Failed
    }

    fn note_missing(&mut self, error: &std::io::Error) -> ReloadOutcome {
        // Deleted or being replaced: keep running the loaded code and look again later. A
        // linker replaces the file in a blink; say so only if it stays gone.
        let polls = match self.pending {
            Pending::Missing(polls) => polls.saturating_add(1),
            _ => 1,
        };
        self.pending = Pending::Missing(polls);
        if polls == MISSING_POLLS_BEFORE_WARNING {
            log::warn!(
                "game library {} is gone ({error}); the loaded code keeps running until it is back",
                self.source.display()
            );
            return ReloadOutcome::Missing;
        }
        ReloadOutcome::Unchanged
    }

    /// A new private copy of the source, checked (`check_and_copy`).
    fn copy_checked(&mut self) -> Result<PathBuf, GameCodeError> {
        // A failed attempt leaves nothing at this name, so only a made copy uses one up.
        let copy = self.copies.dir.path().join(format!("game-{}.so", self.copies.made));
        check_and_copy(&self.source, &copy)?;
        self.copies.made += 1;
        Ok(copy)
    }

    /// Loads the copy, checks the contract, resolves every symbol, then swaps. Says whether
    /// the persistent state changed shape (never on the first load: there is no old state).
    fn install(
        &mut self,
        copy: &Path,
        stamp: FileStamp,
        before_swap: &mut dyn FnMut(),
    ) -> Result<Option<ShapeChange>, GameCodeError> {
        let library = LoadedLibrary::open(copy, &self.source);
        // The mapping keeps the code alive; the directory stays empty between reloads.
        remove_copy(copy);
        let library = library?;
        before_swap();
        let new = library.state_layout;
        // The running library becomes the rollback target; the one before it is dlclosed here.
        let old = self.current.replace(Current { library, stamp });
        self.fresh_after = self.watch.as_ref().map_or(0, |w| w.polls() + 2);
        let shape = old.as_ref().map(|c| c.library.state_layout).filter(|&o| o != new || o.is_none());
        let shape = shape.filter(|_| new.is_some()).map(|old| ShapeChange { old, new });
        if let Some((before, _)) = std::mem::replace(&mut self.previous, old.map(|c| (c.library, 0))) {
            self.retired.add(before);
        }
        self.pending = Pending::Idle;
        Ok(shape)
    }
}

/// Checks the file where it is (cheap: its path, type and headers), then copies it to `copy`
/// in the private directory and checks the copy: what is checked is then exactly what is
/// loaded, even if the source changes again meanwhile. On failure nothing is left at `copy`.
fn check_and_copy(source: &Path, copy: &Path) -> Result<(), GameCodeError> {
    refuse_unsafe(source, false).map_err(GameCodeError::Unsafe)?;
    check_elf(source).map_err(|e| elf_error(e, source))?;
    let private = |source| GameCodeError::PrivateCopy { path: copy.to_path_buf(), source };
    let copied = match copy_regular_file(source, copy) {
        Ok(copied) => copied,
        Err(CopyError::From(e)) => return Err(e),
        Err(CopyError::To(e)) => {
            remove_copy(copy);
            return Err(private(e));
        }
    };
    debug_assert!(copied > 0);
    if let Err(e) = check_elf(copy) {
        remove_copy(copy);
        return Err(elf_error(e, source));
    }
    Ok(())
}

/// Prepares a new build on the rebuild watcher's thread, the moment it is built: the private
/// copy, its checks and the test load in the probe process, which would otherwise cost the
/// frame loop a poll to start and another to collect (about a frame). The frame loop then
/// only `dlopen`s and swaps at its next frame start.
pub struct Preparer {
    source: PathBuf,
    dir: PathBuf,
    probe: Option<LoadProbe>,
    made: u64,
}

/// A checked, test-loaded private copy of one version of the library. Dropped unused, the
/// copy is removed.
#[derive(Debug)]
pub struct Prepared {
    copy: PathBuf,
    stamp: FileStamp,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.copy.as_os_str().is_empty() {
            remove_copy(&self.copy);
        }
    }
}

impl Preparer {
    /// Copies, checks and test-loads the library as it is now. On any failure, `None` (said at
    /// debug level only): the frame loop then takes the ordinary path, which says the failure
    /// once, as for a library that changed without a build.
    pub fn prepare(&mut self) -> Option<Prepared> {
        let stamp = FileStamp::of(&self.source).ok()?;
        // Another name than the frame loop's copies (`game-N.so`), in the same directory.
        let copy = self.dir.join(format!("built-{}.so", self.made));
        if let Err(e) = check_and_copy(&self.source, &copy) {
            log::debug!("watcher could not prepare the new build ({e}); the frame loop will");
            return None;
        }
        self.made += 1;
        let prepared = Prepared { copy, stamp };
        let verdict = match self.probe.as_ref().map(|p| p.start(&prepared.copy)) {
            Some(Ok(mut run)) => run.wait(),
            Some(Err(e)) => ProbeResult::Broken(e.to_string()),
            None => ProbeResult::Passed,
        };
        if !matches!(verdict, ProbeResult::Passed) {
            log::debug!("the new build's test load did not pass ({verdict:?}); the frame loop will say why");
            return None;
        }
        // The file must still be the version that was copied: a newer one is the next build's.
        (FileStamp::of(&self.source).ok()? == stamp).then_some(prepared)
    }
}

fn remove_copy(copy: &Path) {
    let _ = fs::remove_file(copy);
}

fn elf_error(error: ElfError, source: &Path) -> GameCodeError {
    match error {
        ElfError::Io(e) => GameCodeError::Missing { path: source.into(), source: e },
        ElfError::NotALibrary(why) => GameCodeError::NotALibrary { path: source.into(), why },
        ElfError::Incomplete => GameCodeError::Incomplete { path: source.into() },
    }
}

enum CopyError {
    From(GameCodeError),
    To(std::io::Error),
}

/// Copies `from` to a new file `to`. `from` is opened without blocking and must still be a
/// regular file once open (a FIFO swapped in after the check would block `open` forever).
fn copy_regular_file(from: &Path, to: &Path) -> Result<u64, CopyError> {
    let read_error = |source| CopyError::From(GameCodeError::Missing { path: from.into(), source });
    let mut input = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(from).map_err(read_error)?;
    let meta = input.metadata().map_err(read_error)?;
    if let Some(what) = non_file_kind(&meta) {
        let unsafe_path = crate::private_fs::UnsafePath::NotAFile { path: from.into(), what };
        return Err(CopyError::From(GameCodeError::Unsafe(unsafe_path)));
    }
    let mut output = fs::File::create(to).map_err(CopyError::To)?;
    // io::copy uses copy_file_range between two files; reading errors are the source's.
    let mut probe = [0u8; 0];
    input.read(&mut probe).map_err(read_error)?;
    std::io::copy(&mut input, &mut output).map_err(CopyError::To)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reloader with nothing loaded yet, watching `source`.
    fn watching(source: &Path) -> GameCode {
        let dir = private_dir("handmade-test-").unwrap();
        GameCode {
            source: source.into(),
            copies: Copies { dir, made: 0 },
            probe: None,
            current: None,
            previous: None,
            pending: Pending::Idle,
            retired: Retired::default(),
            watch: None,
            fresh_after: 0,
        }
    }

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
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = private_dir("handmade-test-").unwrap();
        let fifo = dir.path().join("libgame.so");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = GameCode::load(&fifo).err().unwrap().to_string();
        assert!(err.contains("is a FIFO, not a file"), "{err}");
        let err = GameCode::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("is a directory, not a file") && !err.contains("private directory"), "{err}");
    }

    #[test]
    fn a_truncated_library_is_checked_in_place_and_never_copied() {
        let dir = private_dir("handmade-test-").unwrap();
        let path = dir.path().join("libgame.so");
        let own = fs::read("/proc/self/exe").unwrap();
        fs::write(&path, &own[..own.len() / 2]).unwrap();
        let mut code = watching(&path);
        assert!(!code.swap_pending());
        let first = code.reload_if_changed(&mut || {});
        assert!(code.swap_pending(), "a changed file holding still for a poll is on its way in");
        let mut outcomes: Vec<ReloadOutcome> = (0..99).map(|_| code.reload_if_changed(&mut || {})).collect();
        outcomes.insert(0, first);
        let checked = outcomes.iter().filter(|o| **o == ReloadOutcome::Waiting).count();
        assert_eq!(checked, 1, "checked once, after the one-poll settle: {outcomes:?}");
        assert!(!code.swap_pending(), "a refused file is not coming in");
        assert_eq!(code.copies.made, 0, "the file is checked where it is, not copied each frame");
        assert!(matches!(code.pending, Pending::Parked(_)), "waits for the file to change");
        assert_eq!(fs::read_dir(code.copies_dir()).unwrap().count(), 0);
    }

    /// The watcher's preparation leaves one checked copy per build, removed when it is used or
    /// dropped; a prepared build is taken up at the next poll, and a failure there parks it.
    #[test]
    fn a_prepared_build_is_taken_up_at_the_next_poll_and_leaves_no_copy() {
        let dir = private_dir("handmade-test-").unwrap();
        let path = dir.path().join("libgame.so");
        fs::write(&path, fs::read("/proc/self/exe").unwrap()).unwrap();
        let mut code = watching(&path);
        let mut preparer = code.preparer();
        let first = preparer.prepare().expect("a complete ELF file is prepared");
        let second = preparer.prepare().expect("again, under a new name");
        assert_ne!(first.copy, second.copy);
        assert_eq!(fs::read_dir(code.copies_dir()).unwrap().count(), 2);
        drop(first);
        assert_eq!(fs::read_dir(code.copies_dir()).unwrap().count(), 1, "a dropped preparation is removed");
        let again = preparer.prepare().expect("a third");
        assert_eq!(code.take_prepared(second), BuildTaken::New);
        assert!(matches!(code.pending, Pending::Prepared(_)));
        assert!(code.swap_pending());
        // An executable is not a loadable game library: the install fails, once, and parks.
        assert_eq!(code.reload_if_changed(&mut || panic!("never swapped")), ReloadOutcome::Failed);
        assert!(matches!(code.pending, Pending::Parked(_)));
        assert!(!code.swap_pending());
        // The same version again (the per-frame poll refused it before its build reported):
        // dropped, not tried and said a second time.
        assert_eq!(code.take_prepared(again), BuildTaken::AlreadyRefused);
        assert_eq!(code.mark_settled(), BuildTaken::AlreadyRefused);
        assert!(matches!(code.pending, Pending::Parked(_)) && !code.swap_pending());
        assert_eq!(fs::read_dir(code.copies_dir()).unwrap().count(), 0, "the used copy is removed");
        fs::write(&path, b"short").unwrap();
        assert!(preparer.prepare().is_none(), "an incomplete file is left to the frame loop");
        assert_eq!(fs::read_dir(code.copies_dir()).unwrap().count(), 0);
    }

    /// After an install from a fresher look than the watch thread's (a prepared build), the
    /// poll waits for the thread to look again rather than take its older stamp for a change.
    #[test]
    fn a_poll_waits_for_the_watch_thread_to_look_after_an_install() {
        let dir = private_dir("handmade-test-").unwrap();
        let path = dir.path().join("libgame.so");
        fs::write(&path, b"one").unwrap();
        let mut code = watching(&path);
        code.watch_source().unwrap();
        let polls = || code.watch.as_ref().unwrap().polls();
        code.fresh_after = polls() + 2; // as `install` sets it
        assert_eq!(code.reload_if_changed(&mut || {}), ReloadOutcome::Unchanged);
        assert!(matches!(code.pending, Pending::Idle), "the lagging stamp is not taken for a change");
        let start = Instant::now();
        while code.watch.as_ref().unwrap().polls() < code.fresh_after {
            assert!(start.elapsed() < Duration::from_secs(5), "the watch thread does not poll");
            std::thread::sleep(Duration::from_millis(1));
        }
        code.reload_if_changed(&mut || {});
        assert!(matches!(code.pending, Pending::Settling(_)), "then the file is looked at again");
    }

    #[test]
    fn transient_failures_are_retried_with_a_growing_wait() {
        let dir = private_dir("handmade-test-").unwrap();
        let path = dir.path().join("libgame.so");
        fs::write(&path, fs::read("/proc/self/exe").unwrap()).unwrap();
        let mut code = watching(&path);
        let stamp = code.stamp_now().unwrap();
        let transient = || GameCodeError::Probe { path: path.clone(), message: "EAGAIN".into() };
        assert_eq!(code.fail(stamp, transient()), ReloadOutcome::Failed);
        assert!(matches!(code.pending, Pending::Retry { polls_left: 1, backoff: 1, .. }));
        assert_eq!(code.fail(stamp, transient()), ReloadOutcome::Waiting, "said and counted once");
        assert!(matches!(code.pending, Pending::Retry { polls_left: 2, backoff: 2, .. }));
        let bad = GameCodeError::NotALibrary { path: path.clone(), why: "no" };
        code.fail(stamp, bad);
        assert!(matches!(code.pending, Pending::Parked(_)), "a bad library waits for a new file");
    }
}
