//! One loaded copy of the game library: `dlopen` it, check the contract, resolve every
//! symbol. Dropping a `LoadedLibrary` `dlclose`s it, so its function pointers must not outlive it.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use handmade_api::{
    game_output_sound_stub, game_update_and_render_stub, GameApiVersionFn, GameMigrateStateFn, GameOutputSoundFn,
    GameStateLayout, GameStateLayoutFn, GameUpdateAndRenderFn, GAME_API_INFO, SYMBOL_API_VERSION, SYMBOL_MIGRATE_STATE,
    SYMBOL_OUTPUT_SOUND, SYMBOL_STATE_LAYOUT, SYMBOL_UPDATE_AND_RENDER,
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
    pub const STUBS: Self = Self {
        update_and_render: game_update_and_render_stub,
        output_sound: game_output_sound_stub,
        migrate_state: None,
    };
}

pub(super) struct LoadedLibrary {
    // Dropping it `dlclose`s the copy; the functions below must not be called after that.
    _library: Library,
    /// The private copy it was loaded from (deleted since; `/proc/self/maps` still names it).
    pub copy: std::path::PathBuf,
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
        Ok(Self { _library: library, copy: copy.to_path_buf(), functions, state_layout })
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

/// Whether another thread may still be running a library's code, asked before it is unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeInUse {
    No,
    Yes,
    /// A thread was running at the moment (no stack to look at): ask again later.
    CannotTell,
}

/// Kernel ids of the threads the platform started that never call the game's code (the
/// rebuild, the watchdog, the audio I/O and device-open helpers), each for its lifetime. The
/// stack check below skips them: a freed buffer's address can be reused for a library mapped
/// later, and a stale word on such a thread's stack then points into that library's code.
/// Seen: after a rollback from a panicking build linked against the shared std, the rebuild
/// thread's stack held one, and the library was kept mapped with a warning about game threads.
static PLATFORM_THREADS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

/// The calling thread counts as the platform's own until this drops (hold it for the thread's
/// whole function). When every slot is taken, the thread is checked like any other.
pub struct PlatformThread(Option<usize>);

pub fn platform_thread() -> PlatformThread {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    let slot = PLATFORM_THREADS
        .iter()
        .position(|slot| slot.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed).is_ok());
    PlatformThread(slot)
}

impl Drop for PlatformThread {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            PLATFORM_THREADS[slot].store(0, Ordering::Release);
        }
    }
}

fn is_platform_thread(tid: i32) -> bool {
    tid != 0 && PLATFORM_THREADS.iter().any(|slot| slot.load(Ordering::Acquire) == tid)
}

/// Looks at every other thread of this process but the platform's own: is it stopped inside the library mapped from
/// `copy`, or does its stack hold a return address into it (a loader thread sleeping in a
/// system call the library made)? Reads `/proc/self/maps`, `/proc/self/task/*/syscall` and the
/// stacks themselves (with `process_vm_readv`, which fails instead of faulting on a page that is
/// gone). Allocates: called when a library is retired, never in a normal frame.
pub fn code_in_use(copy: &Path) -> CodeInUse {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let me = unsafe { libc::gettid() };
    threads_in(copy, &|tid| tid != me && !is_platform_thread(tid))
}

/// `code_in_use` over the threads whose kernel id `consider` accepts.
fn threads_in(copy: &Path, consider: &dyn Fn(i32) -> bool) -> CodeInUse {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else { return CodeInUse::CannotTell };
    let copy = copy.to_string_lossy();
    let code: Vec<(usize, usize)> =
        maps.lines().filter(|l| l.contains(copy.as_ref()) && l.contains(" r-xp ")).filter_map(range_of).collect();
    if code.is_empty() {
        return CodeInUse::No;
    }
    let Ok(tasks) = fs::read_dir("/proc/self/task") else { return CodeInUse::CannotTell };
    let mut verdict = CodeInUse::No;
    let tid = |t: &fs::DirEntry| t.file_name().to_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    for task in tasks.flatten().filter(|t| consider(tid(t))) {
        let Ok(syscall) = fs::read_to_string(task.path().join("syscall")) else { continue };
        let fields: Vec<&str> = syscall.split_whitespace().collect();
        let (Some(sp), Some(pc)) = (fields.iter().rev().nth(1), fields.last()) else {
            verdict = CodeInUse::CannotTell; // "running": no registers to read
            continue;
        };
        let (Some(sp), Some(pc)) = (hex(sp), hex(pc)) else {
            verdict = CodeInUse::CannotTell;
            continue;
        };
        let inside = |address: usize| code.iter().any(|&(lo, hi)| (lo..hi).contains(&address));
        if inside(pc) || stack_holds(&maps, sp, &inside) {
            return CodeInUse::Yes;
        }
    }
    verdict
}

fn hex(text: &str) -> Option<usize> {
    usize::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// `lo-hi perms ...` of a maps line.
fn range_of(line: &str) -> Option<(usize, usize)> {
    let (lo, hi) = line.split_whitespace().next()?.split_once('-')?;
    Some((hex(lo)?, hex(hi)?))
}

/// Does the stack that `sp` points into hold a word inside the library's code, from `sp` to
/// the top of its mapping (at most 8 MiB)?
fn stack_holds(maps: &str, sp: usize, inside: &dyn Fn(usize) -> bool) -> bool {
    let Some((_, top)) = maps.lines().filter_map(range_of).find(|&(lo, hi)| (lo..hi).contains(&sp)) else {
        return false;
    };
    let top = top.min(sp.saturating_add(8 << 20));
    let mut words = vec![0usize; 8192];
    let mut at = sp & !7;
    while at < top {
        let bytes = (top - at).min(words.len() * 8);
        let local = libc::iovec { iov_base: words.as_mut_ptr().cast(), iov_len: bytes };
        let remote = libc::iovec { iov_base: at as *mut libc::c_void, iov_len: bytes };
        // SAFETY: reads this process's own memory into `words` (which holds `bytes` bytes); the
        // kernel checks the remote range and returns -1 instead of faulting if it is unmapped.
        let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if got <= 0 {
            return false;
        }
        if words[..got as usize / 8].iter().any(|&w| inside(w)) {
            return true;
        }
        at += got as usize;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_sleeping_in_code_of_a_mapping_is_seen() {
        // This test binary's own code stands in for a library: a thread sleeping inside it
        // (std's sleep is called from here, so a return address into this binary is on its
        // stack) must be seen; then, once it has ended, nothing is.
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sleeper = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut seen = CodeInUse::CannotTell;
        for _ in 0..50 {
            seen = code_in_use(&exe);
            if seen != CodeInUse::CannotTell {
                break;
            }
        }
        assert_eq!(seen, CodeInUse::Yes);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sleeper.join().unwrap();
        assert_eq!(code_in_use(Path::new("/no/such/library.so")), CodeInUse::No);
    }

    #[test]
    fn the_platforms_own_threads_are_not_looked_at() {
        // A thread of this binary sleeping inside its code, marked as the platform's: seen when
        // looked at, skipped by the check, and looked at again once its mark is dropped.
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (unmark_tx, unmark_rx) = std::sync::mpsc::channel::<()>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            let mark = platform_thread();
            // SAFETY: `gettid` takes no arguments and cannot fail.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            unmark_rx.recv().unwrap();
            drop(mark);
            stop_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let settled = |consider: &dyn Fn(i32) -> bool| {
            (0..50).map(|_| threads_in(&exe, consider)).find(|v| *v != CodeInUse::CannotTell)
        };
        assert!(is_platform_thread(tid));
        assert_eq!(settled(&|t| t == tid), Some(CodeInUse::Yes), "its stack returns into this binary");
        assert_eq!(settled(&|t| t == tid && !is_platform_thread(t)), Some(CodeInUse::No));
        unmark_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!is_platform_thread(tid));
        assert_eq!(settled(&|t| t == tid && !is_platform_thread(t)), Some(CodeInUse::Yes));
        stop_tx.send(()).unwrap();
        sleeper.join().unwrap();
    }

    #[test]
    fn dlerror_becomes_one_line() {
        assert_eq!(one_line("/tmp/x/game-0.so: undefined symbol: foo\nmore"), "undefined symbol: foo");
    }
}
