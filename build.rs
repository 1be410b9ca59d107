//! Build script of the platform executable. It does three jobs:
//! 1. checks that the system libraries the audio/video backends link (alsa-lib, SDL2) are
//!    installed, and says how to install them when they are not;
//! 2. exports the allocation-counting `malloc` family from every binary, so the C libraries and
//!    the game library call the counting versions (see platform/alloc_count.rs);
//! 3. records where this build's target directory and profile are, so the platform can find,
//!    and rebuild, the game library the same workspace builds;
//! 4. compiles the C half of the game-call guard (platform/guard/guard.c: sigsetjmp and the
//!    signal handler, which cannot be written in Rust).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const COUNTED: &[&str] = &["malloc", "calloc", "realloc", "free", "memalign", "aligned_alloc", "posix_memalign"];

fn main() {
    check_system_libraries();
    for symbol in COUNTED {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={symbol}");
    }
    record_target_dir();
    compile_guard_shim();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
}

fn check_system_libraries() {
    for (module, package) in [("alsa", "libasound2-dev"), ("sdl2", "libsdl2-dev")] {
        let found = Command::new("pkg-config").args(["--exists", module]).status().map(|s| s.success());
        match found {
            Ok(true) => {}
            Ok(false) => {
                panic!("{module} development files not found: run `.ci/setup.sh` or `apt-get install {package}`")
            }
            Err(_) => println!("cargo:warning=pkg-config not found; cannot check for {package}"),
        }
    }
}

fn compile_guard_shim() {
    const SHIM: &str = "platform/guard/guard.c";
    cc::Build::new().file(SHIM).warnings(true).extra_warnings(true).compile("handmade_guard");
    println!("cargo:rerun-if-changed={SHIM}");
}

/// OUT_DIR is `<target>/<profile dir>/build/handmade-<hash>/out`; three levels up is the
/// directory where Cargo puts this profile's artifacts (and the game's `libgame.so`).
fn record_target_dir() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let profile_dir = out_dir.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_default();
    let target_dir = profile_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    println!("cargo:rustc-env=HANDMADE_TARGET_DIR={}", target_dir.display());
    println!("cargo:rustc-env=HANDMADE_OPT_LEVEL={}", env::var("OPT_LEVEL").unwrap_or_default());
}
