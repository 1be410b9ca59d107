//! `handmade-probe LIBRARY`: loads a game library in a throwaway process, runs its initialisers
//! and its version function, and exits 0. If loading crashes or hangs, only this process is
//! lost; the platform (platform/reload/load_probe.rs) reads the verdict from the exit status.
//! Load errors that `dlopen` reports (missing symbols, another contract) also exit 0: the
//! platform repeats the load and reports those with full context.

use std::process::ExitCode;

use handmade_api::{GameApiVersionFn, SYMBOL_API_VERSION};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: handmade-probe LIBRARY");
        return ExitCode::from(2);
    };
    // SAFETY: running the library's initialisers is the point; this process exists only to be
    // the one that crashes if they do.
    let Ok(library) = (unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL) }) else {
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
