//! Real-time priority for the threads that move sound (issue 12): the frame thread, which
//! writes the device once a frame, and the sound library's own I/O thread (libpulse's
//! `threaded-ml` behind the ALSA pulse plugin, SDL's audio thread), which moves the data to
//! the server. On a loaded machine a late wake-up of either is a gap a listener hears.
//!
//! How, in order: `sched_setscheduler` to SCHED_FIFO directly where root or RLIMIT_RTPRIO
//! allows it; where that is refused (EPERM: a desktop user, RLIMIT_RTPRIO 0), rtkit over the
//! system bus, as PulseAudio, PipeWire and JACK clients get it (rt/rtkit.rs: a small D-Bus
//! client, why hand-written is said there). rtkit's limits are read first and obeyed
//! (`MaxRealtimePriority`, `RTTimeUSecMax`), or it refuses; it grants its own policy (SCHED_RR
//! on Debian). The request runs on a helper thread the frame thread waits for at most
//! `RTKIT_TIMEOUT` (1 s) and a margin, so a bus that never answers costs start-up about a
//! second, once: the I/O threads are only asked for once the frame thread was granted. Without
//! either, one line says why (not root, the limit, rtkit's answer) and the run goes on at
//! normal priority. One line says what was granted, to which thread, and how.
//!
//! The I/O threads are looked for once, when the device first opens: after a sound server
//! restart the reopened device's new I/O thread runs at normal priority (the frame thread
//! keeps its grant).
//!
//! `HANDMADE_RT_IO_THREADS=0` promotes the frame thread only (for measuring the choice side by
//! side; examples/latency_report.rs passes the environment through).
//!
//! Bounds: the frame thread gets SCHED_RESET_ON_FORK (rtkit always sets it too), so nothing it
//! starts after the grant (a device-open helper, the load probe process, cargo) inherits
//! real-time priority; the rebuild and watchdog threads start before it and stay normal.
//! RLIMIT_RTTIME is set (its hard limit within what rtkit allows, the soft one at most half of
//! it), so a real-time thread that runs the soft limit without sleeping gets SIGXCPU; the
//! handler here drops every thread this file promoted back to normal priority (said once, from
//! the frame, the next time it asks) before the hard limit would kill the process. The game's
//! own calls are bounded by the watchdog (platform/guard) as before.

#[path = "rt/rtkit.rs"]
mod rtkit;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::reopen::{spawn_open, wait_for_open};

/// Real-time priority asked for: above desktop programs, below the sound server (PipeWire
/// asks rtkit for 20 and runs at 88 as root), as `chrt -f 10` did in the figures.
const PRIORITY: i32 = 10;
/// Microseconds of CPU a real-time thread may use without sleeping before SIGXCPU (at most:
/// half the hard limit, so with rtkit's default 200 ms it is 100 ms). A frame sleeps every
/// 16.7 ms; a game call that hangs is cut by the watchdog at 250 ms by default.
const RTTIME_SOFT_US: u64 = 500_000;
/// The hard limit kills the process: only reached if the SIGXCPU handler could not demote.
const RTTIME_HARD_US: u64 = 2_000_000;
/// How long start-up waits for rtkit (connect, two properties, one request per thread).
const RTKIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Thread ids this file promoted (0: free), for the SIGXCPU handler to demote.
static PROMOTED: [AtomicI32; 4] = [AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0)];
static DEMOTED: AtomicBool = AtomicBool::new(false);
/// The soft RLIMIT_RTTIME in force, for the lines that name it.
static RTTIME_SOFT: AtomicU64 = AtomicU64::new(RTTIME_SOFT_US);

/// Who granted the frame thread's priority; the I/O threads are asked for the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Direct,
    Rtkit,
}

impl How {
    fn name(self) -> &'static str {
        match self {
            How::Direct => "direct",
            How::Rtkit => "rtkit",
        }
    }
}

/// What was granted, for the one log line, and for undoing it when the run ends.
#[derive(Debug, Default)]
pub struct Grant {
    /// How the frame thread got it; `None`: it did not.
    how: Option<How>,
    priority: i32,
    /// "frame thread SCHED_FIFO 10 (direct)", one entry per thread asked for.
    said: Vec<String>,
    said_demoted: bool,
}

impl Grant {
    /// Promotes the calling (frame) thread, when `wanted` (the flag) and the sound is paced by
    /// a device; a refusal is said here in one line, a grant by `io_threads_and_say`.
    pub fn frame_thread(wanted: bool, paced: bool) -> Self {
        if !wanted {
            log::info!("real-time: off (--no-rt); sound threads run at normal priority");
            return Self::default();
        }
        if !paced {
            log::info!("real-time: not asked for: no sound device paces this run");
            return Self::default();
        }
        install_sigxcpu_handler();
        match promote_frame_thread() {
            Ok(grant) => grant,
            Err(why) => {
                log::info!("real-time: not granted: {why}; sound runs at normal priority");
                Self::default()
            }
        }
    }

    /// Promotes the sound library's I/O threads (found by name) the way the frame thread got
    /// it, and logs what was granted. Called once the device is open.
    /// `HANDMADE_RT_IO_THREADS=0` leaves them at normal priority.
    pub fn io_threads_and_say(&mut self) {
        let Some(how) = self.how else { return };
        let io_wanted = std::env::var("HANDMADE_RT_IO_THREADS").as_deref() != Ok("0");
        let threads = if io_wanted { sound_io_threads() } else { Vec::new() };
        let results = match how {
            How::Direct => {
                threads.iter().map(|&(tid, _)| set_fifo(tid, self.priority, false).map_err(|e| e.to_string())).collect()
            }
            How::Rtkit if threads.is_empty() => Vec::new(),
            How::Rtkit => ask_rtkit(threads.iter().map(|&(tid, _)| tid).collect())
                .map(|(_, results)| results)
                .unwrap_or_else(|e| vec![Err(e); threads.len()]),
        };
        for ((tid, name), result) in threads.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    remember(tid);
                    self.said.push(format!("{name} {} ({})", policy_name(tid), how.name()));
                }
                Err(e) => self.said.push(format!("{name} not granted ({}: {e})", how.name())),
            }
        }
        if !io_wanted {
            self.said.push("I/O threads left normal (HANDMADE_RT_IO_THREADS=0)".into());
        } else if self.said.len() == 1 {
            self.said.push("no sound I/O thread found".into());
        }
        log::info!(
            "real-time: {}; reset on fork: the rebuild and probe stay normal; RLIMIT_RTTIME {} ms",
            self.said.join(", "),
            RTTIME_SOFT.load(Ordering::Relaxed) / 1000
        );
    }

    /// Once a frame: says once if SIGXCPU took real-time priority away. Returns true then
    /// (the caller counts the frame as an event: the line allocates).
    pub fn check_demoted(&mut self) -> bool {
        if self.said_demoted || !DEMOTED.load(Ordering::Relaxed) {
            return false;
        }
        self.said_demoted = true;
        log::warn!(
            "real-time: a sound thread ran {} ms without sleeping (RLIMIT_RTTIME); back to normal priority",
            RTTIME_SOFT.load(Ordering::Relaxed) / 1000
        );
        true
    }

    #[cfg(test)]
    fn frame_thread_granted(&self) -> bool {
        self.how.is_some()
    }
}

impl Drop for Grant {
    /// The run is over: the threads go back to normal priority (a process running several
    /// runs, like the reports, starts each one as it started the first).
    fn drop(&mut self) {
        if self.how.is_some() {
            demote_all();
        }
    }
}

/// The frame thread directly if allowed, else through rtkit; the error says why neither.
fn promote_frame_thread() -> Result<Grant, String> {
    limit_rttime(RTTIME_HARD_US).map_err(|e| format!("cannot set RLIMIT_RTTIME ({e})"))?;
    let tid = gettid();
    let priority = allowed_priority();
    let direct = match set_fifo(0, priority, true) {
        Ok(()) => return Ok(Grant::granted(How::Direct, priority, tid)),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            // SAFETY: geteuid cannot fail.
            let who = if unsafe { libc::geteuid() } == 0 { "root, refused" } else { "not root" };
            format!("{who}, RLIMIT_RTPRIO {}", rtprio_limit())
        }
        Err(e) => return Err(format!("SCHED_FIFO {priority}: {e}")),
    };
    match ask_rtkit(vec![tid]) {
        Ok((priority, results)) => match results.into_iter().next() {
            Some(Ok(())) => Ok(Grant::granted(How::Rtkit, priority, tid)),
            Some(Err(e)) => Err(format!("{direct}, rtkit: {e}")),
            None => Err(format!("{direct}, rtkit: no answer")),
        },
        Err(e) => Err(format!("{direct}, rtkit: {e}")),
    }
}

impl Grant {
    fn granted(how: How, priority: i32, tid: i32) -> Self {
        remember(tid);
        let said = vec![format!("frame thread {} ({})", policy_name(tid), how.name())];
        Self { how: Some(how), priority, said, said_demoted: false }
    }
}

/// Asks rtkit, on a helper thread waited for at most `RTKIT_TIMEOUT`, to make `tids` real-time:
/// reads its limits, sets RLIMIT_RTTIME within them, then one request per thread. Returns the
/// priority asked for and each thread's answer; the error is one line.
fn ask_rtkit(tids: Vec<i32>) -> Result<(i32, Vec<Result<(), String>>), String> {
    let pending = spawn_open("rtkit", move || {
        let mut bus = rtkit::Bus::system(RTKIT_TIMEOUT)?;
        let limits = bus.rtkit_limits()?;
        let priority = (PRIORITY as u32).min(limits.max_priority);
        if priority == 0 {
            return Err("it allows no real-time priority (MaxRealtimePriority 0)".into());
        }
        limit_rttime(limits.rttime_usec_max).map_err(|e| format!("cannot set RLIMIT_RTTIME ({e})"))?;
        let results = tids.iter().map(|&tid| bus.make_thread_realtime(tid as u64, priority)).collect();
        Ok((priority as i32, results))
    });
    wait_for_open(pending, RTKIT_TIMEOUT + Duration::from_millis(100), "rtkit")
}

fn remember(tid: i32) {
    for slot in &PROMOTED {
        if slot.compare_exchange(0, tid, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return;
        }
    }
}

/// Async-signal-safe: atomics and `sched_setscheduler` only.
fn demote_all() {
    for slot in &PROMOTED {
        let tid = slot.swap(0, Ordering::Relaxed);
        if tid != 0 {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: `param` is a valid sched_param; a tid that no longer exists gives ESRCH.
            // Without CAP_SYS_NICE the kernel refuses to clear SCHED_RESET_ON_FORK (rtkit set
            // it), so the second call keeps it.
            unsafe {
                if libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) != 0 {
                    libc::sched_setscheduler(tid, libc::SCHED_OTHER | libc::SCHED_RESET_ON_FORK, &param);
                }
            }
        }
    }
}

extern "C" fn on_sigxcpu(_: libc::c_int) {
    demote_all();
    DEMOTED.store(true, Ordering::Relaxed);
}

fn install_sigxcpu_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and makes one
    // async-signal-safe system call per promoted thread.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigxcpu as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGXCPU, &action, std::ptr::null_mut());
    }
}

/// Lowers RLIMIT_RTTIME: the hard limit to at most `max_hard_us` (rtkit refuses a process
/// whose hard limit exceeds its `RTTimeUSecMax`), the soft one to at most half the hard one, so
/// SIGXCPU (demotion) comes well before SIGKILL. Never raises either.
fn limit_rttime(max_hard_us: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTTIME, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let hard = limit.rlim_max.min(RTTIME_HARD_US).min(max_hard_us);
    let soft = limit.rlim_cur.min(RTTIME_SOFT_US).min(hard / 2);
    let wanted = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_RTTIME, &wanted) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    RTTIME_SOFT.store(soft, Ordering::Relaxed);
    Ok(())
}

fn rtprio_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to fill.
    unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut limit) };
    limit.rlim_cur
}

/// `PRIORITY`, or what RLIMIT_RTPRIO allows when that is lower (root may exceed it).
fn allowed_priority() -> i32 {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let limit = rtprio_limit().min(PRIORITY as u64) as i32;
    if root {
        PRIORITY
    } else {
        limit.max(1)
    }
}

/// SCHED_FIFO at `priority` for thread `tid` (0: the caller); `reset_on_fork` keeps children
/// (threads and processes) at normal priority.
fn set_fifo(tid: i32, priority: i32, reset_on_fork: bool) -> std::io::Result<()> {
    let policy = libc::SCHED_FIFO | if reset_on_fork { libc::SCHED_RESET_ON_FORK } else { 0 };
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: `param` is valid; a tid of 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn gettid() -> i32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() }
}

/// The threads of this process that move sound for a sound library: libpulse's threaded
/// mainloop (`threaded-ml`, which the ALSA pulse plugin runs) and SDL's audio thread.
fn sound_io_threads() -> Vec<(i32, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?.trim().to_string();
            let sound = name == "threaded-ml"
                || name == "handmade-audio"
                || (name.starts_with("SDLAudio") && name != "SDLAudioHotplug");
            sound.then_some((tid, name))
        })
        .collect()
}

/// The scheduling policy of thread `tid` (0: the caller), SCHED_RESET_ON_FORK included.
fn policy_of(tid: i32) -> i32 {
    // SAFETY: sched_getscheduler only reads.
    unsafe { libc::sched_getscheduler(tid) }
}

/// "SCHED_RR 10": what thread `tid` runs at now, as the kernel says (rtkit picks the policy).
fn policy_name(tid: i32) -> String {
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param to fill.
    unsafe { libc::sched_getparam(tid, &mut param) };
    let name = match policy_of(tid) & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_OTHER => "SCHED_OTHER",
        _ => "another policy",
    };
    format!("{name} {}", param.sched_priority)
}

/// Sleeps to absolute deadlines on CLOCK_MONOTONIC, the clock `Instant` reads on Linux, with
/// `clock_nanosleep(TIMER_ABSTIME)`: a thread preempted between reading the clock and going
/// to sleep still wakes at the deadline, not that much after it (a relative sleep would add
/// the preemption to the wait). `Instant` is opaque, so the two clocks are tied once, here.
#[derive(Debug, Clone, Copy)]
pub struct AbsoluteSleep {
    base: Instant,
    /// CLOCK_MONOTONIC at `base`, in nanoseconds.
    base_ns: u128,
}

impl AbsoluteSleep {
    pub fn new() -> Self {
        // The tightest of a few (clock, Instant, clock) readings: one preempted reading
        // cannot skew the tie by more than the others' spread (tens of nanoseconds).
        let mut best: Option<(u128, Instant, u128)> = None;
        for _ in 0..5 {
            let before = monotonic_ns();
            let instant = Instant::now();
            let after = monotonic_ns();
            let spread = after - before;
            if best.map_or(true, |(s, _, _)| spread < s) {
                best = Some((spread, instant, before + spread / 2));
            }
        }
        let (_, base, base_ns) = best.expect("five readings");
        Self { base, base_ns }
    }

    /// Returns at `deadline` (at once if it has passed). No allocation; one system call.
    pub fn until(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            return;
        }
        let ns = self.base_ns + deadline.saturating_duration_since(self.base).as_nanos();
        let at = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `at` is a valid timespec; no remainder is asked for (TIMER_ABSTIME needs
        // none: after a signal the same absolute deadline is simply slept to again).
        while unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &at, std::ptr::null_mut()) }
            == libc::EINTR
        {}
    }
}

impl Default for AbsoluteSleep {
    fn default() -> Self {
        Self::new()
    }
}

fn monotonic_ns() -> u128 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to fill; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the right is granted (root or RLIMIT_RTPRIO), nothing the frame thread starts
    /// inherits it: not a thread (the rebuild watcher), not a process (the probe).
    #[test]
    fn children_of_the_frame_thread_stay_at_normal_priority() {
        let worker = std::thread::spawn(|| {
            let grant = Grant::frame_thread(true, true);
            if !grant.frame_thread_granted() {
                eprintln!("SKIPPED: real-time priority is not granted here");
                return;
            }
            assert_eq!(policy_of(0) & !libc::SCHED_RESET_ON_FORK, libc::SCHED_FIFO);
            let child = std::thread::spawn(|| policy_of(0)).join().unwrap();
            assert_eq!(child, libc::SCHED_OTHER, "a thread it starts");
            let shell = std::process::Command::new("sh").args(["-c", "chrt -p $$"]).output().unwrap();
            let text = String::from_utf8_lossy(&shell.stdout);
            assert!(text.contains("SCHED_OTHER"), "a process it starts: {text}");
            drop(grant);
            assert_eq!(policy_of(0), libc::SCHED_OTHER, "undone when the run ends");
        });
        worker.join().unwrap();
    }

    /// The tie between `Instant` and CLOCK_MONOTONIC holds: sleeps end at their deadline, not
    /// before it, and not a clock step after it (a wrong tie would be off by as much as the
    /// two clocks differ, seconds or more).
    #[test]
    fn absolute_sleeps_end_at_their_deadline() {
        let sleep = AbsoluteSleep::new();
        for ms in [1u64, 5, 20] {
            let deadline = Instant::now() + Duration::from_millis(ms);
            sleep.until(deadline);
            let woke = Instant::now();
            assert!(woke >= deadline, "woke {:?} early", deadline - woke);
            assert!(woke - deadline < Duration::from_millis(500), "woke {:?} late", woke - deadline);
        }
        let before = Instant::now();
        sleep.until(before - Duration::from_millis(1));
        assert!(before.elapsed() < Duration::from_millis(500), "a past deadline does not sleep");
    }

    #[test]
    fn off_is_off() {
        let grant = Grant::frame_thread(false, true);
        assert!(!grant.frame_thread_granted());
        assert_eq!(policy_of(0), libc::SCHED_OTHER);
    }
}
