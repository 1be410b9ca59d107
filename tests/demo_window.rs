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
        let n = (40..400)
            .map(|i| i + std::process::id() % 200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x720x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let xvfb = Xvfb { child, display };
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "Xvfb {} did not come up", xvfb.display);
            std::thread::sleep(Duration::from_millis(50));
        }
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
