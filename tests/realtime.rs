//! Real-time priority the way a desktop user gets it (issue 12): the platform runs as `nobody`
//! (not root, RLIMIT_RTPRIO 0, so SCHED_FIFO is refused) through a private PulseAudio
//! (.ci/pulse-null-sink.sh, run as that user too), and asks rtkit on a private system bus: a
//! `dbus-daemon`, `polkitd` with one rule allowing rtkit's action (in a mount namespace of its
//! own, so the machine's /etc is untouched) and `rtkit-daemon` as Debian runs it. Checked from
//! outside with `chrt -p` on every thread: the frame thread and libpulse's `threaded-ml` are
//! SCHED_RR with SCHED_RESET_ON_FORK, the watchdog and rebuild threads SCHED_OTHER, and so is
//! a device-open helper the frame thread starts after the grant; `--no-rt`
//! asks nothing; without rtkit on the bus, or with a bus that never answers, one line says why
//! and the sound still plays.
//!
//! Needs root (to start the daemons and become `nobody`) and Debian's rtkit, polkitd, dbus,
//! util-linux and pulseaudio (.ci/setup.sh). Where they are missing the tests say so in one
//! line and pass, unless `CI` is set: then they fail.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RTKIT_DAEMONS: [&str; 2] = ["/usr/libexec/rtkit-daemon", "/usr/lib/rtkit/rtkit-daemon"];
const POLKITDS: [&str; 2] = ["/usr/lib/polkit-1/polkitd", "/usr/libexec/polkitd"];
const TOOLS: [&str; 7] = ["dbus-daemon", "dbus-send", "setpriv", "prlimit", "unshare", "chrt", "pulseaudio"];

/// The polkit rule: rtkit's actions are granted to anyone (a desktop grants them to the user
/// of the active session; a test process has no session).
const RULE: &str = "polkit.addRule(function(action, subject) {\n    \
                    if (action.id.indexOf(\"org.freedesktop.RealtimeKit1.\") == 0) { return polkit.Result.YES; }\n});\n";

/// Where what is needed is missing: the reason, or a failure under CI.
fn missing() -> Option<String> {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let mut missing: Vec<String> = Vec::new();
    if !root {
        missing.push("root".into());
    }
    if !RTKIT_DAEMONS.iter().any(|p| Path::new(p).exists()) {
        missing.push("rtkit-daemon (package rtkit)".into());
    }
    if !POLKITDS.iter().any(|p| Path::new(p).exists()) {
        missing.push("polkitd".into());
    }
    for tool in TOOLS {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            missing.push(tool.into());
        }
    }
    if missing.is_empty() {
        return None;
    }
    let reason = format!("needs {} (.ci/setup.sh installs the packages)", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "under CI the real-time test must run: {reason}");
    Some(reason)
}

fn first_existing(paths: &[&str]) -> PathBuf {
    paths.iter().map(PathBuf::from).find(|p| p.exists()).expect("checked by missing()")
}

/// A private system bus, optionally with polkitd and rtkit on it; all killed when dropped.
struct SystemBus {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    rtkit: Option<Child>,
}

impl SystemBus {
    fn start(with_rtkit: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // `nobody` reaches the bus socket and the copies below through this directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut bus = Self { dir, children: Vec::new(), rtkit: None };
        bus.start_dbus();
        if with_rtkit {
            bus.start_polkitd();
            bus.start_rtkit();
        }
        bus
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus").display())
    }

    fn start_dbus(&mut self) {
        let config = self.dir.path().join("bus.conf");
        let xml = format!(
            "<busconfig><type>system</type><listen>{}</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/>\
             <allow receive_sender=\"*\"/></policy></busconfig>",
            self.address()
        );
        std::fs::write(&config, xml).unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        self.children.push(child);
        wait_for(|| self.dir.path().join("bus").exists(), "the bus socket");
    }

    /// polkitd reads its rules from /etc/polkit-1/rules.d: in a mount namespace of its own,
    /// that directory is this test's (one rule), and the machine's stays as it is.
    fn start_polkitd(&mut self) {
        let rules = self.dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("10-handmade-rtkit.rules"), RULE).unwrap();
        let script = format!(
            "mount --bind {} /etc/polkit-1/rules.d && exec {} --no-debug",
            rules.display(),
            first_existing(&POLKITDS).display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start polkitd");
        self.children.push(child);
        self.wait_for_name("org.freedesktop.PolicyKit1");
    }

    /// rtkit as Debian's service runs it (its own user, chroot, limited resources), without
    /// the canary (a watchdog of starving RT threads, irrelevant to a request); its log goes
    /// to a pipe (it sets RLIMIT_FSIZE to 0, so a file would kill it).
    fn start_rtkit(&mut self) {
        let child = Command::new(first_existing(&RTKIT_DAEMONS))
            .args(["--stderr", "--no-canary"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rtkit-daemon");
        self.rtkit = Some(child);
        self.wait_for_name("org.freedesktop.RealtimeKit1");
    }

    fn wait_for_name(&self, name: &str) {
        wait_for(
            || {
                let answer = Command::new("dbus-send")
                    .args(["--system", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
                    .args(["org.freedesktop.DBus.NameHasOwner", &format!("string:{name}")])
                    .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
                    .output();
                answer.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
            },
            name,
        );
    }

    /// rtkit's log so far (it is stopped first).
    fn rtkit_log(&mut self) -> String {
        let Some(mut rtkit) = self.rtkit.take() else { return String::new() };
        let _ = rtkit.kill();
        let output = rtkit.wait_with_output().expect("rtkit's log");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev().chain(self.rtkit.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what} did not appear within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `nobody` runs: copies of the platform, the game library and its sources, and the
/// null-sink harness, in a directory it can read (the workspace may sit under /root).
struct Copies {
    binary: PathBuf,
    game_lib: PathBuf,
    game_src: PathBuf,
    harness: PathBuf,
    tmp: PathBuf,
}

fn copy_for_nobody(dir: &Path) -> Copies {
    let workspace = common::workspace();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    let binary = dir.join("bin/handmade");
    copy(&common::platform_binary(), &binary);
    let game_lib = dir.join("lib/libgame.so");
    copy(&common::build_game_variant(""), &game_lib);
    // The rebuild watches a game crate inside a workspace: the workspace manifest comes along.
    copy(&workspace.join("Cargo.toml"), &dir.join("Cargo.toml"));
    let game_src = dir.join("game");
    copy(&workspace.join("game/Cargo.toml"), &game_src.join("Cargo.toml"));
    for entry in std::fs::read_dir(workspace.join("game/src")).unwrap() {
        let path = entry.unwrap().path();
        copy(&path, &game_src.join("src").join(path.file_name().unwrap()));
    }
    for script in ["pulse-null-sink.sh", "null-sink-args.sh"] {
        copy(&workspace.join(".ci").join(script), &dir.join(".ci").join(script));
    }
    // The harness's own temp directory (server socket, .asoundrc), owned by `nobody` in effect.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    Copies { binary, game_lib, game_src, harness: dir.join(".ci/pulse-null-sink.sh"), tmp }
}

/// The platform as `nobody` with RLIMIT_RTPRIO 0 through a private PulseAudio, 10 s of frames.
/// `while_running` gets the log line that names real-time priority and the platform's pid.
/// `platform_bus`: the bus address the platform alone is given (PulseAudio keeps `bus`).
fn run_as_nobody(
    bus: &SystemBus,
    copies: &Copies,
    extra: &[&str],
    platform_bus: Option<&str>,
    while_running: impl FnOnce(&str, u32),
) -> Output {
    let platform_bus = platform_bus.map_or_else(|| bus.address(), str::to_string);
    let mut child = Command::new("prlimit")
        .args(["--rtprio=0:0", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&copies.harness)
        .args(["run", "--", "env", &format!("DBUS_SYSTEM_BUS_ADDRESS={platform_bus}")])
        .arg(&copies.binary)
        .args(["--headless", "--audio", "alsa", "--frames", "600", "--stats", "--game-lib"])
        .arg(&copies.game_lib)
        .arg("--game-src")
        .arg(&copies.game_src)
        .args(extra)
        .current_dir(bus.dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env("TMPDIR", &copies.tmp)
        .env_remove("HANDMADE_RT_IO_THREADS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the platform as nobody");
    let (lines, stderr) = mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let collector = std::thread::spawn(move || {
        let mut all = String::new();
        for line in reader.lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let line = loop {
        match stderr.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("real-time:") => break line,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("no real-time line ({e}):\n{}", collector.join().unwrap());
            }
        }
    };
    let pid = find_platform(child.id()).expect("the platform's process");
    while_running(&line, pid);
    let mut output = child.wait_with_output().expect("the run");
    output.stderr = collector.join().unwrap().into_bytes();
    output
}

/// The `handmade` process below `ancestor`.
fn find_platform(ancestor: u32) -> Option<u32> {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    let below = |mut pid: u32| {
        while let Some(p) = parent(pid).filter(|&p| p > 1) {
            if p == ancestor {
                return true;
            }
            pid = p;
        }
        false
    };
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).find(|&pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "handmade") && below(pid)
    })
}

/// Every thread of `pid`: (tid, name, policy as `chrt -p` says it).
fn thread_policies(pid: u32) -> Vec<(u32, String, String)> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: u32 = entry.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) else { continue };
        let chrt = Command::new("chrt").args(["-p", &tid.to_string()]).output().unwrap();
        let text = String::from_utf8_lossy(&chrt.stdout);
        let Some(policy) = text.lines().next().and_then(|l| l.split(": ").nth(1)) else { continue };
        threads.push((tid, name.trim().to_string(), policy.trim().to_string()));
    }
    threads
}

/// The heart of it: a user without the right gets real-time priority from rtkit for exactly
/// the threads that move sound, and `--no-rt` asks rtkit for nothing.
#[test]
fn rtkit_grants_the_sound_threads_to_a_user_without_the_right() {
    if let Some(reason) = missing() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let mut bus = SystemBus::start(true);
    let copies = copy_for_nobody(bus.dir.path());
    let mut seen = Vec::new();
    let mut platform_pid = 0;
    let output = run_as_nobody(&bus, &copies, &[], None, |line, pid| {
        platform_pid = pid;
        assert!(line.contains("frame thread SCHED_RR 10 (rtkit)"), "{line}");
        assert!(line.contains("threaded-ml SCHED_RR 10 (rtkit)"), "{line}");
        assert!(line.contains("RLIMIT_RTTIME 100 ms"), "half rtkit's 200 ms: {line}");
        seen = thread_policies(pid);
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let policy = |name: &str| seen.iter().filter(|t| t.1 == name).map(|t| t.2.as_str()).collect::<Vec<_>>();
    let rt = "SCHED_RR|SCHED_RESET_ON_FORK";
    let frame = seen.iter().find(|t| t.0 == platform_pid).map(|t| t.2.as_str());
    assert_eq!(frame, Some(rt), "the frame (main) thread: {seen:?}");
    assert_eq!(policy("threaded-ml"), [rt], "{seen:?}");
    assert_eq!(policy("game-watchdog"), ["SCHED_OTHER"], "{seen:?}");
    assert_eq!(policy("game-rebuild"), ["SCHED_OTHER"], "{seen:?}");
    let others: Vec<_> = seen.iter().filter(|t| t.0 != platform_pid && t.1 != "threaded-ml").collect();
    assert!(others.iter().all(|t| t.2 == "SCHED_OTHER"), "only the sound threads are real-time: {seen:?}");
    assert_eq!(stderr.lines().filter(|l| l.contains("real-time:")).count(), 1, "{stderr}");

    let mut no_rt_pid = 0;
    let output = run_as_nobody(&bus, &copies, &["--no-rt"], None, |line, pid| {
        no_rt_pid = pid;
        assert!(line.contains("real-time: off (--no-rt)"), "{line}");
        assert!(thread_policies(pid).iter().all(|t| t.2 == "SCHED_OTHER"), "{:?}", thread_policies(pid));
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // PulseAudio (also run as `nobody`) asks rtkit for its own threads: only the platform's
    // requests are counted.
    let log = bus.rtkit_log();
    let granted_to = |pid: u32| {
        let of = format!(" of process {pid} owned by '65534' RT at priority 10.");
        log.lines().filter(|l| l.contains("Successfully made thread") && l.contains(&of)).count()
    };
    assert_eq!(granted_to(platform_pid), 2, "the frame thread and threaded-ml, once each:\n{log}");
    assert!(log.contains(&format!("made thread {platform_pid} of process {platform_pid} ")), "{log}");
    assert_eq!(granted_to(no_rt_pid), 0, "--no-rt asks nothing:\n{log}");
}

/// A socket anyone may connect to that accepts and never answers, while the listener is held.
fn mute_socket(dir: &Path, name: &str) -> (PathBuf, std::os::unix::net::UnixListener) {
    let path = dir.join(name);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind the mute socket");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    (path, listener)
}

/// Threads the frame thread starts after the grant do not inherit it (rtkit sets
/// SCHED_RESET_ON_FORK): the sound server dies mid-run and its socket is replaced by one that
/// accepts and never answers (held here), so the frame thread's device-open helper
/// (`alsa-open`) hangs there long enough to be looked at.
#[test]
fn a_device_open_helper_started_after_the_grant_stays_normal() {
    if let Some(reason) = missing() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let bus = SystemBus::start(true);
    let copies = copy_for_nobody(bus.dir.path());
    let (mute, _listener) = mute_socket(bus.dir.path(), "mute-server");
    let mut helper = None;
    let output = run_as_nobody(&bus, &copies, &[], None, |line, pid| {
        assert!(line.contains("frame thread SCHED_RR 10 (rtkit)"), "{line}");
        let pulse = std::fs::read_dir(&copies.tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("handmade-pulse."))
            .expect("the harness's directory");
        let killed = Command::new(pulse.join("kill-server.sh")).output().expect("kill the server");
        assert!(killed.status.success(), "{killed:?}");
        let socket = pulse.join("run/pulse/native");
        let _ = std::fs::remove_file(&socket);
        std::os::unix::fs::symlink(&mute, &socket).unwrap();
        let start = Instant::now();
        while helper.is_none() && start.elapsed() < Duration::from_secs(6) {
            let threads = thread_policies(pid);
            helper = threads.iter().find(|t| t.1 == "alsa-open").cloned();
            let frame = threads.iter().find(|t| t.0 == pid).map(|t| t.2.clone());
            assert_eq!(frame.as_deref(), Some("SCHED_RR|SCHED_RESET_ON_FORK"), "{threads:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("alsa: lost"), "{stderr}");
    let (_, _, policy) = helper.unwrap_or_else(|| panic!("no alsa-open thread seen:\n{stderr}"));
    assert_eq!(policy, "SCHED_OTHER", "a thread the real-time frame thread started");
}

/// Without rtkit on the bus (a desktop without it, a container): one line says what was tried
/// and why it failed, start-up goes on, the sound plays at normal priority.
#[test]
fn without_rtkit_one_line_says_why_and_the_sound_plays() {
    if let Some(reason) = missing() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let bus = SystemBus::start(false);
    let copies = copy_for_nobody(bus.dir.path());
    let output = run_as_nobody(&bus, &copies, &[], None, |line, pid| {
        let expected = "real-time: not granted: not root, RLIMIT_RTPRIO 0, rtkit: \
                        org.freedesktop.DBus.Error.ServiceUnknown: ";
        assert!(line.contains(expected), "{line}");
        assert!(line.ends_with("; sound runs at normal priority"), "{line}");
        assert!(thread_policies(pid).iter().all(|t| t.2 == "SCHED_OTHER"), "{:?}", thread_policies(pid));
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(common::stat_u64(&output.stdout, "frames") >= 600, "{stdout}");
}

/// A bus that accepts the connection and never answers (a wedged dbus-daemon) costs start-up
/// a bounded wait, said in one line, and the run goes on. (The bound checked is loose, a hang
/// detector, not a timing: rtkit's wait is 1 s, a hung one would be PulseAudio's 30 s or more.)
#[test]
fn a_bus_that_never_answers_costs_start_up_a_bounded_wait() {
    if let Some(reason) = missing() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let bus = SystemBus::start(false);
    let copies = copy_for_nobody(bus.dir.path());
    let (mute, _listener) = mute_socket(bus.dir.path(), "mute-bus");
    let start = Instant::now();
    let mute_address = format!("unix:path={}", mute.display());
    let output = run_as_nobody(&bus, &copies, &[], Some(&mute_address), |line, _| {
        let expected = "real-time: not granted: not root, RLIMIT_RTPRIO 0, rtkit: the system bus did not answer \
                        in time; sound runs at normal priority";
        assert!(line.ends_with(expected), "{line}");
    });
    let took = start.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(common::stat_u64(&output.stdout, "frames"), 600);
    assert!(took < Duration::from_secs(45), "600 frames and start-up took {took:?}");
}

/// `machine_stalls` (the probe that tells a stop of the whole machine from its scheduler's
/// delays): one line per CPU with every wake-up of its 2 ms grid accounted for, the steal
/// time, and the whole-machine stalls it found, in order. Structure and counts only: whether
/// this machine stalls is what it measures, not what a test can know.
#[test]
fn machine_stalls_reports_every_cpu_and_the_stops_it_found() {
    let output = Command::new(common::example_binary("machine_stalls"))
        .env("MACHINE_STALLS_SECONDS", "1")
        .env("MACHINE_STALLS_BUSY", "1")
        .output()
        .expect("run machine_stalls");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let probes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("cpu") && l.contains(" wake-ups, ")).collect();
    assert_eq!(probes.len(), cpus, "{stdout}");
    for line in &probes {
        let wakeups: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect(line);
        // 500 deadlines in 1 s; a late wake-up skips the deadlines it overslept.
        assert!((1..=501).contains(&wakeups), "{line}");
    }
    let steal = stdout.lines().find(|l| l.starts_with("steal time")).expect("the steal line");
    assert_eq!(steal.matches(" ms").count(), cpus, "{steal}");
    if cpus >= 2 {
        let whole = stdout.lines().find(|l| l.starts_with("whole machine stalled")).expect("the stalls line");
        let times: Vec<f64> =
            whole.split_whitespace().filter_map(|w| w.split_once("s:").and_then(|(t, _)| t.parse().ok())).collect();
        let said: usize =
            whole.split(": ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).expect(whole);
        assert_eq!(times.len(), said, "{whole}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times.iter().all(|t| (0.0..=1.1).contains(t)), "{whole}");
    }
}
