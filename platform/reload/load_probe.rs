//! The load probe: before a new game library is `dlopen`ed into the running platform, a
//! throwaway process (`handmade-probe`, platform/bin/probe.rs) loads it first. A library that passes
//! every header check can still crash the loader (damaged relocations, a static initialiser that
//! faults or never returns); then only the probe dies, and the platform says so in one line and
//! keeps the code it has. Costs one short-lived process per new library (~2 ms), started
//! without waiting: the frame loop polls it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A library whose initialisers take longer than this is treated as hanging.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the probe program is.
#[derive(Debug, Clone)]
pub struct LoadProbe {
    program: PathBuf,
}

#[derive(Debug)]
pub enum ProbeResult {
    Running,
    Passed,
    /// The probe died from a signal while loading (SIGSEGV, SIGBUS, ...).
    Crashed {
        signal: i32,
    },
    Hung,
    /// The probe could not be run or exited in a way a load never makes it exit.
    Broken(String),
}

impl LoadProbe {
    /// `HANDMADE_PROBE` if set, else `handmade-probe` beside this executable or one directory up
    /// (examples and tests live in `target/<profile>/{examples,deps}`). `None` if not built.
    pub fn find() -> Option<Self> {
        if let Some(program) = std::env::var_os("HANDMADE_PROBE") {
            return Some(Self { program: program.into() });
        }
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        [dir, dir.parent()?]
            .iter()
            .map(|d| d.join("handmade-probe"))
            .find(|p| p.is_file())
            .map(|program| Self { program })
    }

    /// The probe program, which also starts the platform's builds (`--background`).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Starts loading `library` in a new process; returns at once.
    pub fn start(&self, library: &Path) -> io::Result<ProbeRun> {
        let child = Command::new(&self.program)
            .arg(library)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(ProbeRun { child: Some(child), started: Instant::now() })
    }
}

/// A probe in flight. Dropping it kills the process.
pub struct ProbeRun {
    child: Option<Child>,
    started: Instant,
}

impl ProbeRun {
    /// One `waitpid(WNOHANG)`: never blocks.
    pub fn poll(&mut self) -> ProbeResult {
        use std::os::unix::process::ExitStatusExt;
        let Some(child) = self.child.as_mut() else { return ProbeResult::Broken("already finished".into()) };
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) if self.started.elapsed() < PROBE_TIMEOUT => return ProbeResult::Running,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                return ProbeResult::Hung;
            }
            Err(e) => return ProbeResult::Broken(e.to_string()),
        };
        self.child = None;
        match (status.code(), status.signal()) {
            (Some(0), _) => ProbeResult::Passed,
            (_, Some(signal)) => ProbeResult::Crashed { signal },
            (code, _) => ProbeResult::Broken(format!("the probe exited with {code:?}")),
        }
    }
}

impl ProbeRun {
    /// Waits for the verdict (start-up and forced reloads, where the frame waits anyway).
    pub fn wait(&mut self) -> ProbeResult {
        loop {
            match self.poll() {
                ProbeResult::Running => std::thread::sleep(Duration::from_micros(500)),
                done => return done,
            }
        }
    }
}

impl Drop for ProbeRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `SIGSEGV`-style name of a signal number, for the one-line error.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}
