//! Lesson L1.3, stub functions: the course's pattern of a function pointer that starts at a
//! stub and is swapped for the real function once the library loads, here with libasound's
//! `snd_pcm_format_width` (the stub says -1, the real one 16 for S16_LE); what a caller sees when
//! the library is missing (a path in a fresh temporary directory, never a moved system file):
//! the loader's error, and the stub answering every call, counted; and what the real platform
//! does when its game library is missing.
//!
//! Run with: cargo run --release --example l1_3_stubs

mod common;

use std::os::raw::c_int;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;

const LIBASOUND: &str = "libasound.so.2";
/// SND_PCM_FORMAT_S16_LE in alsa-lib's `pcm.h`.
const S16_LE: c_int = 2;

type FormatWidth = unsafe extern "C" fn(c_int) -> c_int;

static STUB_CALLS: AtomicU64 = AtomicU64::new(0);

/// The stub: what every call gets while the library is not loaded. It counts its calls.
unsafe extern "C" fn format_width_stub(_format: c_int) -> c_int {
    STUB_CALLS.fetch_add(1, Ordering::Relaxed);
    -1
}

/// The course's table of one function: starts at the stub, swapped when the library loads.
struct Alsa {
    format_width: FormatWidth,
    handle: *mut std::ffi::c_void,
}

/// dlerror's message (the loader's own words: path and reason).
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "no dlerror message".into()
    } else {
        // SAFETY: non-NULL: a C string owned by libdl, copied at once.
        unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned()
    }
}

impl Alsa {
    fn stubs() -> Self {
        Self { format_width: format_width_stub, handle: std::ptr::null_mut() }
    }

    /// dlopens `path` and swaps in its function; on failure keeps the stub and returns dlerror.
    fn load(&mut self, path: &str) -> Result<(), String> {
        let c_path = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: a valid C string; libasound's initialisers are safe to run, and a missing
        // path loads nothing.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dl_error());
        }
        // SAFETY: `handle` is a live dlopen handle and the name a C string literal.
        let f = unsafe { libc::dlsym(handle, c"snd_pcm_format_width".as_ptr()) };
        if f.is_null() {
            let e = dl_error();
            // SAFETY: the handle came from dlopen above and nothing from it is kept.
            unsafe { libc::dlclose(handle) };
            return Err(e);
        }
        // SAFETY: `snd_pcm_format_width` is `int snd_pcm_format_width(snd_pcm_format_t)`, the
        // enum an int; the pointer stays valid until `handle` is closed in `drop`.
        self.format_width = unsafe { std::mem::transmute::<*mut std::ffi::c_void, FormatWidth>(f) };
        self.handle = handle;
        Ok(())
    }

    fn width(&self, format: c_int) -> c_int {
        // SAFETY: `format_width` is the stub or the real function, both with this signature.
        unsafe { (self.format_width)(format) }
    }
}

impl Drop for Alsa {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            self.format_width = format_width_stub; // never call into a closed library
                                                   // SAFETY: the handle came from dlopen and is closed once.
            unsafe { libc::dlclose(self.handle) };
        }
    }
}

fn main() {
    header("L1.3", "stub functions: stub to real, and a missing library");
    let calls = pick(1000u64, 100);

    let mut alsa = Alsa::stubs();
    let before = alsa.width(S16_LE);
    let loaded = alsa.load(LIBASOUND);
    let after = alsa.width(S16_LE);
    println!(
        "snd_pcm_format_width(S16_LE): stub -> {before}; dlopen({LIBASOUND}): {}; then -> {after}",
        loaded.as_ref().map_or_else(|e| format!("failed: {e}"), |()| "ok".to_string())
    );
    if loaded.is_err() {
        eprintln!("libasound did not load; nothing measured");
        std::process::exit(1);
    }
    verdict(
        "the stub returns -1 until the library loads; then the real function answers",
        &format!("before the swap {before}, after it {after} (S16_LE is 16 bits); stub calls counted: {}", STUB_CALLS.load(Ordering::Relaxed)),
        "the same call site went through the pointer both times: the stub answered once (counted), then the function dlsym found",
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join(LIBASOUND);
    let mut absent = Alsa::stubs();
    let stub_before = STUB_CALLS.load(Ordering::Relaxed);
    let error = absent.load(missing.to_str().expect("utf-8 path")).expect_err("nothing is at that path");
    let answers: Vec<c_int> = (0..calls).map(|_| absent.width(S16_LE)).collect();
    let stub_calls = STUB_CALLS.load(Ordering::Relaxed) - stub_before;
    println!("dlopen({}) -> {error}", missing.display());
    verdict(
        "with libasound removed, the game keeps running on the stubs",
        &format!("{calls} calls: {} answered -1, stub calls counted {stub_calls}", answers.iter().filter(|&&a| a == -1).count()),
        &format!(
            "dlopen's error was one line{}; every later call went to the stub, and the counter says how many did, so the missing library is visible, not silent",
            if error.contains(missing.to_str().unwrap_or("?")) { " naming the path and the reason" } else { "" }
        ),
    );

    // The real platform asked to load a game library that is not there.
    let game = dir.path().join("libgame.so");
    let output = Command::new(platform_binary())
        .args(["--headless", "--audio", "none", "--frames", "10", "--no-rebuild", "--game-lib"])
        .arg(&game)
        .output()
        .expect("run the platform");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    println!(
        "platform --game-lib {} -> exit {:?}, stderr: {}",
        game.display(),
        output.status.code(),
        lines.join(" | ")
    );
    verdict(
        "L1.3's pattern carried over to the game library: a missing one runs on stubs",
        &format!("exit status {:?}, {} line(s) on stderr", output.status.code(), lines.len()),
        &format!(
            "{}: it did not run on stubs",
            if lines.len() == 1 && lines[0].contains("libgame.so") && !output.status.success() {
                "the platform stopped before its first frame with one line naming the path"
            } else {
                "the platform's answer is the line above"
            }
        ),
    );
}
