//! Fuzz target: the game library checker and loader (`GameCode::load`: `check_elf`, the private
//! copy, `dlopen`, the contract and symbol checks) given an arbitrary file as the game library.
//! Whatever the file holds, loading must fail with one line or succeed, never crash.
#![no_main]

use std::sync::OnceLock;

use handmade::GameCode;
use libfuzzer_sys::fuzz_target;

/// One private directory for the candidate files (tempfile makes it 0700, unpredictable).
static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::Builder::new().prefix("handmade-fuzz-").tempdir().expect("temp dir"));
    let path = dir.path().join("libgame.so");
    std::fs::write(&path, data).expect("write the candidate library");
    match GameCode::load(&path) {
        Ok(code) => {
            // Loaded from this file, its private copy already unlinked (the mapping keeps it):
            // millions of loads leave nothing behind.
            assert_eq!(code.source(), path);
            let copies = std::fs::read_dir(code.copies_dir()).expect("the private copy directory").count();
            assert_eq!(copies, 0, "a loaded copy is removed");
        }
        Err(error) => {
            let line = error.to_string();
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }
});
