//! Rebuild on save: a background thread watches the game's sources with inotify and builds the
//! game (fast_build.rs: rustc directly when it can, a quick tier first) whenever one is saved.
//! The frame loop never waits for it: it polls `BuildWatcher::poll`, a lock-free channel
//! receive, and each new library is then picked up by the reload protocol.
//!
//! inotify (not polling) means a save is seen within microseconds; a short settle window folds
//! the several events one editor save makes into one build. A save is a file closed after
//! writing or renamed into place: a file merely created (vim writes `sound.rs` anew) starts no
//! settle, its close does. The watcher never dies silently: an inotify error is said once and
//! the watch restarted (then one build, as saves may have been missed), and a panic on the
//! thread is said and the thread's work started again.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime};

use crate::dev::fast_build::{GameBuilder, Interrupt, Settings, TierResult};
use crate::dev::game_build::{self, GameCrate};
use crate::reload::{Prepared, Preparer};

/// How long to wait before trying again when the watch cannot be set up.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What a finished build tells the frame loop.
#[derive(Debug)]
pub struct BuildEvent {
    pub ok: bool,
    /// First lines of the compiler's errors (empty when `ok`).
    pub summary: String,
    /// When the saved file was written (its mtime), to measure save-to-new-code.
    pub saved_at: SystemTime,
    /// Save seen by the watcher -> build started.
    pub detect: Duration,
    /// Build start -> this tier's library in place.
    pub build: Duration,
    /// The new library copied, checked and test-loaded on the watcher's thread (`None`: not
    /// prepared, the frame loop's reload protocol does it all).
    pub prepared: Option<Prepared>,
    /// Library in place -> prepared (or given up).
    pub prepare: Duration,
    /// Whether `prepared` was filled (it is taken out when handed to the reloader).
    pub prepared_on_watcher: bool,
}

/// The frame loop's end: cheap to poll every frame.
pub struct BuildWatcher {
    events: Receiver<BuildEvent>,
    /// true when a build starts, false when its last tier is done.
    building: Receiver<bool>,
    in_build: bool,
}

impl BuildWatcher {
    /// Starts watching `game`'s library sources (`src/`) and its folder (`Cargo.toml`); each
    /// good build is then prepared for loading by `preparer` on the watcher's thread.
    pub fn start(game: &GameCrate, preparer: Option<Preparer>) -> io::Result<Self> {
        // Building and loading sources someone else can edit would run their code as us.
        game_build::refuse_unsafe_sources(game).map_err(io::Error::other)?;
        let watch = Watch::open(game)?;
        let (tx, events) = mpsc::channel();
        let (building_tx, building) = mpsc::channel();
        let builder = GameBuilder::new(game, Settings::from_env());
        log::info!("on save: {}", builder.settings().describe());
        let mut job = Job {
            watch: Some(watch),
            game: game.clone(),
            builder,
            pending: Vec::new(),
            done: tx,
            started: building_tx,
            preparer,
        };
        std::thread::Builder::new().name("game-rebuild".into()).spawn(move || {
            let _platform = crate::reload::platform_thread();
            supervise(&mut job);
        })?;
        Ok(Self { events, building, in_build: false })
    }

    /// A finished build, if one finished since the last call. Never blocks or allocates.
    pub fn poll(&mut self) -> Option<BuildEvent> {
        self.events.try_recv().ok()
    }

    /// True once per build start (for the window title). Never blocks or allocates.
    pub fn build_started(&mut self) -> bool {
        let mut started = false;
        while let Ok(building) = self.building.try_recv() {
            started |= building;
            self.in_build = building;
        }
        started
    }

    /// Whether a build is running, all its tiers, as of the last `build_started`.
    pub fn building(&self) -> bool {
        self.in_build
    }
}

/// The watcher thread's state, kept across restarts.
struct Job {
    /// `None` after an error, until the watch is set up again.
    watch: Option<Watch>,
    game: GameCrate,
    builder: GameBuilder,
    /// Changes seen while a build ran: the next build's.
    pending: Vec<PathBuf>,
    done: Sender<BuildEvent>,
    started: Sender<bool>,
    preparer: Option<Preparer>,
}

/// Runs the watch-and-build loop; a panic in it is said and the loop started again.
fn supervise(job: &mut Job) {
    loop {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watch_and_build(job)));
        match run {
            Ok(()) => return, // the platform is shutting down
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                log::error!("the rebuild watcher panicked ({}); restarting it", why.unwrap_or_default());
                job.watch = None;
                let _ = job.started.send(false); // the build it was running is over
                std::thread::sleep(RESTART_DELAY);
            }
        }
    }
}

/// Returns only when the frame loop is gone.
fn watch_and_build(job: &mut Job) {
    loop {
        let (changed, seen) = next_save(job);
        let saved_at = changed.iter().filter_map(|p| p.metadata().and_then(|m| m.modified()).ok()).max();
        let saved_at = saved_at.unwrap_or_else(SystemTime::now);
        if job.started.send(true).is_err() {
            return;
        }
        let build_start = Instant::now();
        let detect = build_start - seen;
        let Job { watch, builder, pending, done, preparer, .. } = job;
        let mut preparer = preparer.as_mut().filter(|_| builder.settings().check_on_watcher);
        let mut alive = true;
        let readable = watch.as_ref().map_or(-1, |w| w.inotify.fd);
        let mut relevant = || take_events(watch, pending);
        let mut interrupt = Interrupt { readable, relevant: &mut relevant };
        builder.build(&changed, &mut interrupt, &mut |tier| {
            let build = Build { saved_at, detect, since_start: build_start.elapsed() };
            alive &= report(tier, build, preparer.as_deref_mut(), done);
        });
        alive &= job.started.send(false).is_ok();
        if !alive {
            return;
        }
    }
}

/// When a build's save happened and how long it took to be seen and built.
struct Build {
    saved_at: SystemTime,
    detect: Duration,
    since_start: Duration,
}

/// Logs a finished tier, prepares a good one for loading, and hands it to the frame loop;
/// false when the frame loop is gone.
fn report(tier: TierResult, build: Build, preparer: Option<&mut Preparer>, done: &Sender<BuildEvent>) -> bool {
    let what = format!("tier {} (opt-level {}, {})", tier.tier, tier.opt_level, tier.by);
    let ms = tier.took.as_secs_f64() * 1e3;
    match &tier.result {
        Ok(()) => log::info!("game rebuilt: {what} in {ms:.0} ms"),
        Err(e) if e.starts_with("stopped") => {
            log::info!("game build {what} {e}");
            return true;
        }
        Err(e) => log::warn!("game build failed, keeping the running code: {e}"),
    }
    let ok = tier.result.is_ok();
    let built = Instant::now();
    let prepared = preparer.filter(|_| ok).and_then(|p| p.prepare());
    let event = BuildEvent {
        ok,
        summary: tier.result.err().unwrap_or_default(),
        saved_at: build.saved_at,
        detect: build.detect,
        build: build.since_start,
        prepared_on_watcher: prepared.is_some(),
        prepared,
        prepare: built.elapsed(),
    };
    done.send(event).is_ok()
}

/// Waits for a save of a game source (or takes the ones seen during the last build), lets the
/// burst settle, and returns the changed sources and when the first was seen. An inotify
/// failure is said once and the watch set up again; a save may have been missed then, so it
/// returns as if one was seen.
fn next_save(job: &mut Job) -> (Vec<PathBuf>, Instant) {
    let settle = job.builder.settings().settle;
    loop {
        let Some(watch) = job.watch.as_ref() else {
            job.watch = reopen(&job.game);
            return (vec![job.game.lib_src.clone()], Instant::now());
        };
        let mut changed = std::mem::take(&mut job.pending);
        match collect_save(watch, &mut changed, settle) {
            Ok(seen) => {
                let relevant: Vec<PathBuf> = changed.iter().filter(|p| is_game_source(p)).cloned().collect();
                for dir in changed.iter().filter(|p| p.is_dir()) {
                    let _ = watch.inotify.watch_tree(dir); // a new module directory
                }
                if !relevant.is_empty() {
                    return (relevant, seen);
                }
            }
            Err(e) => {
                log::warn!("the game source watcher failed ({e}); restarting it");
                job.watch = None;
            }
        }
    }
}

/// Waits for a save unless `changed` already holds one, then until `settle` passes with no
/// further save. Returns when the first save was seen.
fn collect_save(watch: &Watch, changed: &mut Vec<PathBuf>, settle: Duration) -> io::Result<Instant> {
    if !changed.iter().any(|p| is_game_source(p)) {
        changed.extend(watch.wait_for_save(None)?);
    }
    let seen = Instant::now();
    loop {
        let more = watch.wait_for_save(Some(settle))?;
        if more.is_empty() {
            return Ok(seen);
        }
        changed.extend(more);
    }
}

/// Reads the events that came in during a build (keeping them in `pending`); true when one is
/// a save of a game source. An error drops the watch (restarted before the next wait).
fn take_events(watch: &mut Option<Watch>, pending: &mut Vec<PathBuf>) -> bool {
    let Some(w) = watch.as_ref() else { return false };
    match w.wait_for_save(Some(Duration::ZERO)) {
        Ok(paths) => {
            let relevant = paths.iter().any(|p| is_game_source(p));
            pending.extend(paths);
            relevant
        }
        Err(e) => {
            log::warn!("the game source watcher failed ({e}); restarting it");
            *watch = None;
            pending.push(PathBuf::from("lib.rs"));
            true
        }
    }
}

/// Sets the watch up again, trying each `RESTART_DELAY` (said once) until it works.
fn reopen(game: &GameCrate) -> Option<Watch> {
    let game_dir = &game.dir;
    let mut said = false;
    loop {
        match Watch::open(game) {
            Ok(watch) => {
                log::info!("watching {} again", game_dir.display());
                return Some(watch);
            }
            Err(e) if !said => {
                log::warn!("cannot watch {} ({e}); trying again each second", game_dir.display());
                said = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(RESTART_DELAY);
    }
}

/// The watch of one game crate: its sources' tree and its directory (for `Cargo.toml`).
struct Watch {
    inotify: Inotify,
}

impl Watch {
    fn open(game: &GameCrate) -> io::Result<Self> {
        let game_dir = &game.dir;
        let inotify = Inotify::new()?;
        inotify.watch_tree(&game.src_dir)?;
        inotify.watch(game_dir)?; // Cargo.toml (and a new src/ after a checkout)
        Ok(Self { inotify })
    }

    /// Saved paths (closed after writing, renamed in), waiting at most `timeout`; empty on
    /// timeout. A watched directory that went away, or lost events, is an error: the watch is
    /// set up again.
    fn wait_for_save(&self, timeout: Option<Duration>) -> io::Result<Vec<PathBuf>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let events = self.inotify.wait(left)?;
            if events.is_empty() {
                return Ok(Vec::new());
            }
            if events.iter().any(|e| e.mask & libc::IN_Q_OVERFLOW != 0) {
                return Err(io::Error::other("the kernel's event queue overflowed"));
            }
            let saves: Vec<PathBuf> =
                events.into_iter().filter(|e| e.mask & libc::IN_CREATE == 0 || e.is_dir).map(|e| e.path).collect();
            if !saves.is_empty() {
                return Ok(saves);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Vec::new());
            }
        }
    }
}

/// Rust sources, the manifest and build scripts; not editor swap or backup files.
fn is_game_source(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    name == "Cargo.toml" || name.ends_with(".rs")
}

/// One inotify event: the path, what happened (`IN_*` bits) and whether it is a directory.
struct Event {
    path: PathBuf,
    mask: u32,
    is_dir: bool,
}

/// A minimal inotify wrapper: one descriptor, directory watches, blocking reads with a timeout.
struct Inotify {
    fd: libc::c_int,
    dirs: std::cell::RefCell<Vec<(libc::c_int, PathBuf)>>,
}

impl Inotify {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall wrapper; the returned descriptor is owned by `Self`.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, dirs: Default::default() })
    }

    fn watch(&self, dir: &Path) -> io::Result<()> {
        let c_path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::other("path contains NUL"))?;
        let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE;
        // SAFETY: `fd` is a live inotify descriptor and `c_path` a NUL-terminated string.
        let wd = unsafe { libc::inotify_add_watch(self.fd, c_path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::new(io::Error::last_os_error().kind(), format!("watching {}", dir.display())));
        }
        self.dirs.borrow_mut().push((wd, dir.to_path_buf()));
        Ok(())
    }

    fn watch_tree(&self, dir: &Path) -> io::Result<()> {
        self.watch(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                self.watch_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Events, waiting at most `timeout` (forever with `None`); empty on timeout. A signal
    /// interrupting the wait is not an error.
    fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Event>> {
        let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `pfd` is a valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(Vec::new()) } else { Err(e) };
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0 {
            return Err(io::Error::other("the inotify descriptor is no longer valid"));
        }
        if ready == 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its whole length.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return Err(if n == 0 { io::Error::other("inotify read nothing") } else { io::Error::last_os_error() });
        }
        Ok(self.parse(&buf[..n as usize]))
    }

    fn parse(&self, mut bytes: &[u8]) -> Vec<Event> {
        let header = std::mem::size_of::<libc::inotify_event>();
        let dirs = self.dirs.borrow();
        let mut paths = Vec::new();
        while bytes.len() >= header {
            // SAFETY: the kernel wrote whole events; `read_unaligned` copes with the byte buffer's alignment.
            let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let end = (header + event.len as usize).min(bytes.len());
            let name = &bytes[header..end];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            let dir = dirs.iter().find(|(wd, _)| *wd == event.wd).map(|(_, dir)| dir.as_path());
            if let Some(dir) = dir.or((event.mask & libc::IN_Q_OVERFLOW != 0).then_some(Path::new(""))) {
                let path = dir.join(std::ffi::OsStr::from_bytes(name));
                paths.push(Event { path, mask: event.mask, is_dir: event.mask & libc::IN_ISDIR != 0 });
            }
            bytes = &bytes[end..];
        }
        paths
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        // SAFETY: `fd` is owned by `self` and closed exactly once.
        unsafe { libc::close(self.fd) };
    }
}

/// The game sources to watch: `--game-src`, or this workspace's `game/` when present.
pub fn game_source_dir(flag: Option<&Path>) -> Option<(PathBuf, PathBuf)> {
    let game_dir = match flag {
        Some(dir) => dir.to_path_buf(),
        None => game_build::workspace_dir()?.join("game"),
    };
    let game_dir = game_dir.canonicalize().ok()?;
    let workspace = game_dir.ancestors().skip(1).find(|d| is_workspace_root(d))?.to_path_buf();
    Some((workspace, game_dir))
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).map(|t| t.contains("[workspace]")).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_others_can_edit_are_not_watched() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        std::fs::create_dir_all(game.join("src")).unwrap();
        std::fs::write(game.join("Cargo.toml"), "[package]").unwrap();
        std::fs::write(game.join("src/lib.rs"), "").unwrap();
        std::fs::set_permissions(game.join("src"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = BuildWatcher::start(&GameCrate::demo(dir.path(), &game), None).err().expect("refused");
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }

    #[test]
    fn only_sources_trigger_builds() {
        assert!(is_game_source(Path::new("game/src/sound.rs")));
        assert!(is_game_source(Path::new("game/Cargo.toml")));
        assert!(!is_game_source(Path::new("game/src/.sound.rs.swp")));
        assert!(!is_game_source(Path::new("game/src/sound.rs~")));
        assert!(!is_game_source(Path::new("game/src/4913")));
    }

    #[test]
    fn a_save_is_a_close_after_writing_not_a_create() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let watch = Watch { inotify: Inotify::new().unwrap() };
        watch.inotify.watch_tree(dir.path()).unwrap();
        let path = dir.path().join("sub/lib.rs");
        let mut file = std::fs::File::create(&path).unwrap();
        assert!(watch.wait_for_save(Some(Duration::from_millis(100))).unwrap().is_empty(), "created, not saved yet");
        std::io::Write::write_all(&mut file, b"fn main() {}").unwrap();
        drop(file);
        let seen = watch.wait_for_save(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(seen, [path]);
    }

    #[test]
    fn a_broken_watch_is_set_up_again_and_builds_once() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        std::fs::create_dir_all(game.join("src")).unwrap();
        let (done, _events) = mpsc::channel();
        let (started, _building) = mpsc::channel();
        let crate_ = GameCrate::demo(dir.path(), &game);
        let builder = GameBuilder::new(&crate_, Settings::default());
        let watch = Some(Watch::open(&crate_).unwrap());
        let mut job = Job { watch, game: crate_, builder, pending: Vec::new(), done, started, preparer: None };
        // Swap the inotify descriptor for a pipe with no writer: the next wait fails.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors; the write end is closed at once and
        // the read end is owned (and closed) by the watch's `Inotify` from here on.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[1]);
            let watch = job.watch.as_mut().unwrap();
            libc::close(watch.inotify.fd);
            watch.inotify.fd = fds[0];
        }
        let (changed, _) = next_save(&mut job);
        assert_eq!(changed, [game.join("src/lib.rs")], "a save may have been missed: one build");
        std::fs::write(game.join("src/sound.rs"), "").unwrap();
        let (changed, _) = next_save(&mut job);
        assert_eq!(changed, [game.join("src/sound.rs")], "the new watch sees saves");
    }
}
