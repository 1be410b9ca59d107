//! Helpers shared by the integration tests: building game variants, running the platform
//! binary, reading its `stats:` line and analysing the sound it wrote.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RATE: f64 = 48_000.0;
pub const TONE_HZ: f64 = 256.0;
pub const DEFAULT_AMPLITUDE: f64 = 0.25;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>` of this test build: the test binary lives in `<target>/<profile>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target dir above the test binary").to_path_buf()
}

pub fn platform_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handmade"))
}

/// Builds the game with `features` (comma-separated, "" for the default game) into a target
/// directory of its own, so variants never overwrite each other, and returns the library.
pub fn build_game_variant(features: &str) -> PathBuf {
    let name = if features.is_empty() { "default".to_string() } else { features.replace(',', "-") };
    let dir = target_dir().join("test-games").join(&name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).args(["build", "--quiet", "-p", "game", "--target-dir"]).arg(&dir);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "building the game variant `{name}` failed");
    dir.join("debug/libgame.so")
}

/// Runs the platform with `args` and returns its output.
pub fn run_platform(args: &[&str]) -> Output {
    Command::new(platform_binary()).args(args).env("RUST_LOG", "info").output().expect("run the handmade binary")
}

/// The value of `key` in the `stats:` line of `stdout`.
pub fn stat(stdout: &[u8], key: &str) -> String {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("stats:")).unwrap_or_else(|| panic!("no stats line in {text}"));
    handmade::stats::parse_line(line)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

pub fn stat_u64(stdout: &[u8], key: &str) -> u64 {
    stat(stdout, key).parse().unwrap_or_else(|_| panic!("{key} is not an integer"))
}

/// Reads a 16-bit stereo WAV into (left, right) as floats in -1..1.
pub fn read_wav(path: &Path) -> (Vec<f64>, Vec<f64>) {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    let left = samples.iter().step_by(2).map(|&s| f64::from(s) / 32767.0).collect();
    let right = samples.iter().skip(1).step_by(2).map(|&s| f64::from(s) / 32767.0).collect();
    (left, right)
}

/// The game's tone at sample `n` when its phase ran continuously from 0.
pub fn ideal_tone(n: usize) -> f64 {
    (std::f64::consts::TAU * (TONE_HZ * n as f64 / RATE).fract()).sin()
}

/// Largest deviation of `samples` from `amplitude(n) * ideal_tone(n)`, in 16-bit steps.
pub fn max_error_steps(samples: &[f64], amplitude: impl Fn(usize) -> f64) -> f64 {
    samples.iter().enumerate().map(|(n, &s)| ((s - amplitude(n) * ideal_tone(n)) * 32767.0).abs()).fold(0.0, f64::max)
}

/// Stderr lines a user sees (log lines and errors).
pub fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_string).collect()
}

/// Copies the workspace (sources and manifests, not `target/` or `.git/`) into `to`, so a test
/// can edit the game's sources without touching the real ones.
pub fn copy_workspace(to: &Path) {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap().flatten() {
            let name = entry.file_name();
            if name == "target" || name == ".git" || name == "fuzz" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                copy_dir(&path, &to.join(&name));
            } else {
                fs::copy(&path, to.join(&name)).unwrap();
            }
        }
    }
    copy_dir(&workspace(), to);
}

/// Collects a child's stderr lines on a thread so a test can wait for one.
pub struct LogWatcher {
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl LogWatcher {
    pub fn new(stderr: std::process::ChildStderr) -> Self {
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { lines, seen: Vec::new() }
    }

    /// Waits for a line containing `text`; panics with everything seen after `timeout`.
    pub fn wait_for(&mut self, text: &str, timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{text}` within {timeout:?}; the log so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Everything logged until the child closed stderr.
    pub fn rest(&mut self) -> &[String] {
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(30)) {
            self.seen.push(line);
        }
        &self.seen
    }
}

/// Starts the platform paced (`--realtime`) on the offline backend, writing `wav`, so a test
/// has real time to change things under it; `extra` flags are appended.
pub fn spawn_paced(game: &Path, wav: &Path, frames: u32, extra: &[&str]) -> std::process::Child {
    let frames = frames.to_string();
    Command::new(platform_binary())
        .args(["--headless", "--realtime", "--audio", "wav", "--stats", "--no-rebuild", "--frames", &frames])
        .arg("--game-lib")
        .arg(game)
        .arg("--wav-out")
        .arg(wav)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn handmade")
}
