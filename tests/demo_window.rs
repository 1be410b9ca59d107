//! The demo in a real window under Xvfb: the window opens, 150 frames run, `--screenshot` is
//! written; two runs without input give identical screenshots; holding `right` for 80 frames
//! changes both the picture and the sound. Starts (and always kills) its own X server.
//! Skips with a message only when Xvfb is not installed and `CI` is not set.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// An Xvfb on a display number of its own, killed on drop (also when a test panics).
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Option<Xvfb> {
        let installed = Command::new("Xvfb").arg("-help").stderr(Stdio::null()).status().is_ok();
        if !installed {
            assert!(std::env::var_os("CI").is_none(), "Xvfb is not installed but CI is set: install xvfb");
            eprintln!("SKIPPED: Xvfb is not installed (apt-get install xvfb); the window test did not run");
            return None;
        }
        // -displayfd: Xvfb picks a free display itself and writes its number to our pipe, so
        // tests starting servers at the same moment never share one.
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x720x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("Xvfb's stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("Xvfb's display number");
        let display = format!(":{}", line.trim());
        assert!(display.len() > 1, "Xvfb did not report a display");
        let xvfb = Xvfb { child, display };
        Some(xvfb)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Shot {
    pixels: Vec<u8>,
    wav: Vec<u8>,
    stderr: String,
    stdout: Vec<u8>,
}

fn run_windowed(xvfb: &Xvfb, game: &Path, dir: &Path, name: &str, script: Option<&str>) -> Shot {
    let png = dir.join(format!("{name}.png"));
    let wav = dir.join(format!("{name}.wav"));
    let mut cmd = Command::new(platform_binary());
    cmd.args(["--audio", "wav", "--frames", "150", "--stats", "--no-rebuild", "--game-lib"])
        .arg(game)
        .arg("--wav-out")
        .arg(&wav)
        .arg("--screenshot")
        .arg(&png)
        .env("DISPLAY", &xvfb.display)
        .env("RUST_LOG", "info");
    if let Some(text) = script {
        let path = dir.join(format!("{name}.txt"));
        std::fs::write(&path, text).unwrap();
        cmd.arg("--input-script").arg(path);
    }
    let out = cmd.output().expect("run the handmade binary");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{name}: {stderr}");
    Shot { pixels: decode_png(&png), wav: std::fs::read(&wav).unwrap(), stderr, stdout: out.stdout }
}

fn decode_png(path: &Path) -> Vec<u8> {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("screenshot written"));
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height, info.color_type), (960, 540, png::ColorType::Rgb));
    pixels
}

#[test]
fn a_window_opens_and_input_changes_picture_and_sound() {
    let Some(xvfb) = Xvfb::start() else { return };
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let a = run_windowed(&xvfb, &game, dir.path(), "a", None);
    assert!(a.stderr.contains("window 960x540"), "a real window: {}", a.stderr);
    assert_eq!(stat_u64(&a.stdout, "frames"), 150);
    eprintln!(
        "under Xvfb: heap_allocs_after_warmup={} over 90 frames (libX11's XSync replies at present)",
        stat(&a.stdout, "heap_allocs_after_warmup")
    );
    assert!(a.pixels.iter().any(|&b| b != 0), "the game drew something");

    let b = run_windowed(&xvfb, &game, dir.path(), "b", None);
    assert!(a.pixels == b.pixels, "without input two runs give identical screenshots");
    assert!(a.wav == b.wav, "and identical sound");

    let right = run_windowed(&xvfb, &game, dir.path(), "right", Some("0 right down\n80 right up\n"));
    assert!(right.pixels != a.pixels, "holding right moves the player");
    assert!(right.wav != a.wav, "holding right pans the tone");
}

/// Asks the window titled `handmade...` to close, the way a window manager's close button does
/// (a WM_DELETE_WINDOW client message). Xvfb has no window manager, so a tiny Xlib program
/// stands in for it.
fn compile_close_window(dir: &Path) -> PathBuf {
    let source = dir.join("close_window.c");
    std::fs::write(
        &source,
        r#"#include <X11/Xlib.h>
#include <string.h>
static Window find(Display *d, Window w) {
    char *name = NULL;
    if (XFetchName(d, w, &name) && name) {
        int hit = strncmp(name, "handmade", 8) == 0;
        XFree(name);
        if (hit) return w;
    }
    Window root, parent, *kids = NULL, found = 0;
    unsigned n = 0;
    if (!XQueryTree(d, w, &root, &parent, &kids, &n)) return 0;
    for (unsigned i = 0; i < n && !found; i++) found = find(d, kids[i]);
    if (kids) XFree(kids);
    return found;
}
int main(void) {
    Display *d = XOpenDisplay(NULL);
    if (!d) return 2;
    Window w = find(d, DefaultRootWindow(d));
    if (!w) return 3;
    XEvent e;
    memset(&e, 0, sizeof e);
    e.xclient.type = ClientMessage;
    e.xclient.window = w;
    e.xclient.message_type = XInternAtom(d, "WM_PROTOCOLS", False);
    e.xclient.format = 32;
    e.xclient.data.l[0] = XInternAtom(d, "WM_DELETE_WINDOW", False);
    e.xclient.data.l[1] = CurrentTime;
    XSendEvent(d, w, False, NoEventMask, &e);
    XCloseDisplay(d);
    return 0;
}
"#,
    )
    .unwrap();
    let program = dir.join("close_window");
    let status = Command::new("cc").arg("-o").arg(&program).arg(&source).arg("-lX11").status().unwrap();
    assert!(status.success(), "cc close_window.c -lX11 failed (libx11-dev comes with libsdl2-dev)");
    program
}

#[test]
fn closing_the_window_while_reloading_every_frame_quits_cleanly() {
    let Some(xvfb) = Xvfb::start() else { return };
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let close = compile_close_window(dir.path());
    let wav = dir.path().join("closed.wav");
    let child = Command::new(platform_binary())
        .args(["--audio", "wav", "--frames", "100000", "--reload-every", "1", "--stats", "--no-rebuild"])
        .arg("--game-lib")
        .arg(&game)
        .arg("--wav-out")
        .arg(&wav)
        .env("DISPLAY", &xvfb.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Command::new(&close).env("DISPLAY", &xvfb.display).status().unwrap().success() {
        assert!(Instant::now() < deadline, "the window never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed_at = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert!(closed_at.elapsed() < Duration::from_secs(3), "quit promptly");
    let frames = stat_u64(&out.stdout, "frames");
    assert!(frames > 30 && frames < 100_000, "{frames}");
    assert_eq!(stat_u64(&out.stdout, "reloads"), frames - 1, "a full reload every frame until the close");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
    let reader = hound::WavReader::open(&wav).expect("the WAV was finished");
    assert_eq!(reader.len() as u64, frames * 1600);
}
