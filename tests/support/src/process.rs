//! The platform as a child process: run it to the end, or start it paced and watch its log
//! while a test changes things under it.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::paths::platform_binary;

/// A platform (or other) child process that is killed when dropped while still running, so a
/// test that fails half-way does not leave it playing and loading the machine for the tests
/// that come after it (a leftover once failed two later paced-sound tests). Derefs to the
/// `Child`; `wait_with_output` ends it the usual way.
pub struct Running(Option<Child>);

impl Running {
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0.take().expect("the child is there until waited for").wait_with_output()
    }
}

impl From<Child> for Running {
    fn from(child: Child) -> Self {
        Self(Some(child))
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child is there until waited for")
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is there until waited for")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs the platform binary with `args` (logging at `info`) to the end and returns its output.
pub fn run_platform(args: &[&str]) -> Output {
    Command::new(platform_binary()).args(args).env("RUST_LOG", "info").output().expect("run the handmade binary")
}

/// Starts the platform paced (`--realtime`) on the offline backend, writing `wav`, so a test
/// has real time to change things under it; `extra` flags are appended.
pub fn spawn_paced(game: &Path, wav: &Path, frames: u32, extra: &[&str]) -> Running {
    let frames = frames.to_string();
    let child = Command::new(platform_binary())
        .args(["--headless", "--realtime", "--audio", "wav", "--stats", "--no-rebuild", "--frames", &frames])
        .arg("--game-lib")
        .arg(game)
        .arg("--wav-out")
        .arg(wav)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handmade");
    Running::from(child)
}

/// Asserts that a run ended successfully (showing its stderr when not) and returns that
/// stderr, for the checks that follow.
pub fn expect_success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "the platform failed ({}):\n{stderr}", output.status);
    stderr
}

/// Stderr lines a user sees (log lines and errors).
pub fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_string).collect()
}

/// Collects a child's stderr lines on a thread so a test can wait for one.
pub struct LogWatcher {
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl LogWatcher {
    pub fn new(stderr: ChildStderr) -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { lines, seen: Vec::new() }
    }

    /// Waits for a line containing `text`; panics with everything seen after `timeout`.
    pub fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        self.wait_for_unless(text, None, timeout)
    }

    /// As `wait_for`, but a line containing `failure` first panics at once with that line.
    pub fn wait_for_unless(&mut self, text: &str, failure: Option<&str>, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                    if failure.is_some_and(|f| line.contains(f)) {
                        panic!("{line}");
                    }
                }
                Err(_) => panic!("no `{text}` within {timeout:?}; the log so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Everything logged until the child closed stderr.
    pub fn rest(&mut self) -> &[String] {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        &self.seen
    }
}

/// Puts the library `from` at `to` the way a build does: a new file, `mode`, renamed into place
/// (a running platform sees one complete file change, never a half-written one).
pub fn install_library(from: &std::path::Path, to: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let staged = to.with_extension("staged");
    std::fs::copy(from, &staged).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

/// Asks a running platform to stop the way a user's Ctrl-C or a service manager would.
pub fn terminate(child: &std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -TERM");
}

/// Saves `text` to `path` the way editors do: a new file, renamed over the old one.
pub fn save_like_an_editor(path: &std::path::Path, text: &str) {
    let staged = path.with_extension("rs.new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// Starts the platform paced, sound to `wav`, rebuilding the game of the copied workspace `ws`
/// into `target` on save; returns once the watcher is up (or panics after `timeout`).
pub fn spawn_watching(
    ws: &std::path::Path,
    target: &std::path::Path,
    wav: &std::path::Path,
    timeout: std::time::Duration,
) -> (Running, LogWatcher) {
    spawn_watching_with(ws, target, wav, timeout, &[])
}

/// `spawn_watching` with more environment for the platform (`HANDMADE_GAME_PROFILE`...).
pub fn spawn_watching_with(
    ws: &std::path::Path,
    target: &std::path::Path,
    wav: &std::path::Path,
    timeout: std::time::Duration,
    env: &[(&str, &str)],
) -> (Running, LogWatcher) {
    let mut child = Command::new(crate::platform_binary())
        .envs(env.iter().copied())
        .args(["--headless", "--realtime", "--audio", "wav", "--stats"])
        .arg("--wav-out")
        .arg(wav)
        .arg("--game-src")
        .arg(ws.join("game"))
        .env("CARGO_TARGET_DIR", target)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handmade");
    let mut log = LogWatcher::new(child.stderr.take().unwrap());
    let child = Running::from(child);
    log.wait_for("rebuilding the game when", timeout);
    (child, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child still running when its `Running` is dropped (a test that panicked half-way) is
    /// killed and reaped; one that was waited for is left alone.
    #[test]
    fn a_dropped_running_child_is_killed() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let running = Running::from(child);
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let start = Instant::now();
        drop(running);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "killed and reaped");
        assert!(start.elapsed() < Duration::from_secs(5));

        let done = Running::from(Command::new("true").stdout(Stdio::piped()).spawn().unwrap());
        assert!(done.wait_with_output().unwrap().status.success());
    }
}
