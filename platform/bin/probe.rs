//! `handmade-probe LIBRARY`: loads a game library in a throwaway process, runs its initialisers
//! and its version function, and exits 0. If loading crashes or hangs, only this process is
//! lost; the platform (platform/reload/load_probe.rs) reads the verdict from the exit status.
//! Load errors that `dlopen` reports (missing symbols, another contract) also exit 0: the
//! platform repeats the load and reports those with full context.
//!
//! `handmade-probe --background NICE PARENT -- PROGRAM ARGS...`: runs PROGRAM (cargo, rustc)
//! at niceness NICE, sent SIGTERM when the platform thread that started it ends. The platform
//! starts its builds through this so it never forks itself (platform/dev/fast_build.rs says why).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use handmade_api::{GameApiVersionFn, SYMBOL_API_VERSION};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--background") {
        return background(&args[1..]);
    }
    let Some(path) = args.first() else {
        eprintln!("usage: handmade-probe LIBRARY | --background NICE PARENT -- PROGRAM ARGS...");
        return ExitCode::from(2);
    };
    // SAFETY: running the library's initialisers is the point; this process exists only to be
    // the one that crashes if they do.
    let Ok(library) = (unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }) else {
        return ExitCode::SUCCESS;
    };
    // SAFETY: the symbol is looked up with the contract's type; a library built against another
    // contract still exports it with this signature (it only returns other values).
    if let Ok(version) = unsafe { library.get::<GameApiVersionFn>(SYMBOL_API_VERSION) } {
        // SAFETY: as above; the function takes nothing and returns plain data.
        std::hint::black_box(unsafe { version() });
    }
    ExitCode::SUCCESS
}

/// Lowers this process's priority, asks for SIGTERM when its parent ends, and becomes PROGRAM
/// (both settings survive `exec`). A parent already gone is an exit, not an orphan build.
fn background(args: &[OsString]) -> ExitCode {
    let number = |a: Option<&OsString>| a.and_then(|a| a.to_str()).and_then(|a| a.parse::<i32>().ok());
    let (Some(nice), Some(parent), Some("--"), Some(program)) =
        (number(args.first()), number(args.get(1)), args.get(2).and_then(|a| a.to_str()), args.get(3))
    else {
        eprintln!("usage: handmade-probe --background NICE PARENT -- PROGRAM ARGS...");
        return ExitCode::from(2);
    };
    // SAFETY: plain system calls on this process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() != parent {
            return ExitCode::from(1);
        }
    }
    let error = std::process::Command::new(program).args(&args[4..]).exec();
    eprintln!("handmade-probe: cannot run {}: {error}", program.to_string_lossy());
    ExitCode::from(127)
}
