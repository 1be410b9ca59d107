//! Rebuild on save: a background thread watches the game's sources with inotify and runs
//! `cargo build -p game` (same profile as the startup build) whenever one is saved. The frame
//! loop never waits for it: it polls `BuildWatcher::poll`, a lock-free channel receive, and
//! the new library is then picked up by the reload protocol.
//!
//! inotify (not polling) means a save is seen within microseconds; a short settle window
//! (`SETTLE`) folds the several events one editor save makes into one build.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime};

use crate::dev::game_build::{self, GameCrate};

/// Quiet time after the last event before building: editors write, rename and chmod in bursts.
const SETTLE: Duration = Duration::from_millis(8);

/// What a finished build tells the frame loop.
#[derive(Debug, Clone)]
pub struct BuildEvent {
    pub ok: bool,
    /// First lines of the compiler's errors (empty when `ok`).
    pub summary: String,
    /// When the saved file was written (its mtime), to measure save-to-new-code.
    pub saved_at: SystemTime,
    /// Save seen by the watcher -> build started.
    pub detect: Duration,
    pub build: Duration,
}

/// The frame loop's end: cheap to poll every frame.
pub struct BuildWatcher {
    events: Receiver<BuildEvent>,
    building: Receiver<()>,
}

impl BuildWatcher {
    /// Starts watching `game`'s library sources (`src/`) and its folder (`Cargo.toml`).
    pub fn start(game: &GameCrate) -> io::Result<Self> {
        let game_dir = game.dir.as_path();
        // Building and loading sources someone else can edit would run their code as us.
        for file in [game_dir.join("Cargo.toml"), game.lib_src.clone()] {
            crate::private_fs::refuse_unsafe(&file, false).map_err(|e| io::Error::other(e.to_string()))?;
        }
        let inotify = Inotify::new()?;
        inotify.watch_tree(&game.src_dir)?;
        inotify.watch(game_dir)?; // Cargo.toml (and a new src/ after a checkout)
        let (tx, events) = mpsc::channel();
        let (building_tx, building) = mpsc::channel();
        let game = game.clone();
        std::thread::Builder::new()
            .name("game-rebuild".into())
            .spawn(move || watch_and_build(inotify, &game, &tx, &building_tx))?;
        Ok(Self { events, building })
    }

    /// A finished build, if one finished since the last call. Never blocks or allocates.
    pub fn poll(&mut self) -> Option<BuildEvent> {
        self.events.try_recv().ok()
    }

    /// True once per build start (for the window title).
    pub fn build_started(&mut self) -> bool {
        self.building.try_recv().is_ok()
    }
}

fn watch_and_build(inotify: Inotify, game: &GameCrate, done: &Sender<BuildEvent>, started: &Sender<()>) {
    loop {
        // Block until something under the sources changes, then let the burst settle.
        let Ok(mut changed) = inotify.wait(None) else { return };
        let seen = Instant::now();
        while let Ok(more) = inotify.wait(Some(SETTLE)) {
            if more.is_empty() {
                break;
            }
            changed.extend(more);
        }
        let relevant: Vec<&PathBuf> = changed.iter().filter(|p| is_game_source(p)).collect();
        if relevant.is_empty() {
            continue;
        }
        for dir in changed.iter().filter(|p| p.is_dir()) {
            let _ = inotify.watch_tree(dir); // a new module directory
        }
        let saved_at = relevant.iter().filter_map(|p| p.metadata().and_then(|m| m.modified()).ok()).max();
        let saved_at = saved_at.unwrap_or_else(SystemTime::now);
        let _ = started.send(());
        let build_start = Instant::now();
        let result = game_build::build_game_in_background(game);
        let event = BuildEvent {
            ok: result.is_ok(),
            summary: result.err().unwrap_or_default(),
            saved_at,
            detect: build_start - seen,
            build: build_start.elapsed(),
        };
        if event.ok {
            log::info!("game rebuilt in {:.0} ms", event.build.as_secs_f64() * 1e3);
        } else {
            log::warn!("game build failed, keeping the running code: {}", event.summary);
        }
        if done.send(event).is_err() {
            return; // the platform is shutting down
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

    /// Paths that changed, waiting at most `timeout` (forever with `None`); empty on timeout.
    fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<PathBuf>> {
        let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `pfd` is a valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its whole length.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.parse(&buf[..n as usize]))
    }

    fn parse(&self, mut bytes: &[u8]) -> Vec<PathBuf> {
        let header = std::mem::size_of::<libc::inotify_event>();
        let dirs = self.dirs.borrow();
        let mut paths = Vec::new();
        while bytes.len() >= header {
            // SAFETY: the kernel wrote whole events; `read_unaligned` copes with the byte buffer's alignment.
            let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let end = (header + event.len as usize).min(bytes.len());
            let name = &bytes[header..end];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some((_, dir)) = dirs.iter().find(|(wd, _)| *wd == event.wd) {
                paths.push(dir.join(std::ffi::OsStr::from_bytes(name)));
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
        let err = BuildWatcher::start(&GameCrate::demo(dir.path(), &game)).err().expect("refused");
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
    fn inotify_reports_a_save_in_a_watched_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let inotify = Inotify::new().unwrap();
        inotify.watch_tree(dir.path()).unwrap();
        std::fs::write(dir.path().join("sub/lib.rs"), "fn main() {}").unwrap();
        let mut seen = inotify.wait(Some(Duration::from_secs(2))).unwrap();
        while let Ok(more) = inotify.wait(Some(Duration::from_millis(50))) {
            if more.is_empty() {
                break;
            }
            seen.extend(more);
        }
        assert!(seen.contains(&dir.path().join("sub/lib.rs")), "{seen:?}");
    }
}
