//! Real-time priority for the threads that move sound (issue 12): the frame thread, which
//! writes the device once a frame, and the sound library's own I/O thread (libpulse's
//! `threaded-ml` behind the ALSA pulse plugin, SDL's audio thread), which moves the data to
//! the server. On a loaded machine a late wake-up of either is a gap a listener hears.
//!
//! How: `pthread_setschedparam` to SCHED_FIFO where RLIMIT_RTPRIO or root allows it. Not
//! rtkit: asking it needs a D-Bus client (libdbus or a wire-protocol implementation), which
//! this platform does not carry; without the right, one line says so and the run goes on at
//! normal priority.
//!
//! Bounds: the frame thread gets SCHED_RESET_ON_FORK, so nothing it starts (the rebuild
//! thread, the load probe process, cargo, the device-open helpers) inherits real-time
//! priority. RLIMIT_RTTIME is set, so a real-time thread that runs `RTTIME_SOFT` without
//! sleeping gets SIGXCPU; the handler here drops every thread this file promoted back to
//! normal priority (said once, from the frame, the next time it asks). The game's own calls
//! are bounded by the watchdog (platform/guard) as before.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// SCHED_FIFO priority asked for: above desktop programs, below the sound server (PipeWire
/// asks rtkit for 20 and runs at 88 as root), as `chrt -f 10` did in the figures.
const PRIORITY: i32 = 10;
/// Microseconds of CPU a real-time thread may use without sleeping before SIGXCPU. A frame
/// sleeps every 16.7 ms; a game call that hangs is cut by the watchdog at 250 ms by default.
const RTTIME_SOFT_US: u64 = 500_000;
/// The hard limit kills the process: only reached if the SIGXCPU handler could not demote.
const RTTIME_HARD_US: u64 = 2_000_000;

/// Thread ids this file promoted (0: free), for the SIGXCPU handler to demote.
static PROMOTED: [AtomicI32; 4] = [AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0)];
static DEMOTED: AtomicBool = AtomicBool::new(false);

/// What was granted, for the one log line, and for undoing it when the run ends.
#[derive(Debug, Default)]
pub struct Grant {
    frame_thread: bool,
    io_threads: Vec<String>,
    said_demoted: bool,
}

impl Grant {
    /// Promotes the calling (frame) thread, when `wanted` (the flag) and the sound is paced by
    /// a device; says in one line what was granted.
    pub fn frame_thread(wanted: bool, paced: bool) -> Self {
        if !wanted {
            log::info!("real-time: off (--no-rt); sound threads run at normal priority");
            return Self::default();
        }
        if !paced {
            log::info!("real-time: not asked for: no sound device paces this run");
            return Self::default();
        }
        if let Err(e) = limit_rttime() {
            log::info!("real-time: not asked for: cannot set RLIMIT_RTTIME ({e}); normal priority");
            return Self::default();
        }
        install_sigxcpu_handler();
        let priority = allowed_priority();
        match set_fifo(0, priority, true) {
            Ok(()) => {
                remember(gettid());
                Self { frame_thread: true, io_threads: Vec::new(), said_demoted: false }
            }
            Err(e) => {
                log::info!(
                    "real-time: not granted ({e}: needs root or RLIMIT_RTPRIO, which is {}; rtkit is not \
                     supported); sound runs at normal priority",
                    rtprio_limit()
                );
                Self::default()
            }
        }
    }

    /// Promotes the sound library's I/O threads (found by name) and logs what was granted.
    /// Called once the device is open; the frame thread must have been granted first.
    /// `HANDMADE_RT_IO_THREADS=0` leaves them at normal priority (for measuring the choice
    /// side by side: examples/latency_report.rs).
    pub fn io_threads_and_say(&mut self) {
        if !self.frame_thread {
            return;
        }
        let io_wanted = std::env::var("HANDMADE_RT_IO_THREADS").as_deref() != Ok("0");
        for (tid, name) in sound_io_threads().into_iter().filter(|_| io_wanted) {
            if set_fifo(tid, allowed_priority(), false).is_ok() {
                remember(tid);
                self.io_threads.push(name);
            }
        }
        let io =
            if self.io_threads.is_empty() { "no sound I/O thread found".into() } else { self.io_threads.join(", ") };
        log::info!(
            "real-time: frame thread SCHED_FIFO {} (reset on fork: the rebuild and probe stay normal); also {io}; \
             RLIMIT_RTTIME {} ms",
            allowed_priority(),
            RTTIME_SOFT_US / 1000
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
            RTTIME_SOFT_US / 1000
        );
        true
    }

    #[cfg(test)]
    fn frame_thread_granted(&self) -> bool {
        self.frame_thread
    }
}

impl Drop for Grant {
    /// The run is over: the threads go back to normal priority (a process running several
    /// runs, like the reports, starts each one as it started the first).
    fn drop(&mut self) {
        if self.frame_thread {
            demote_all();
        }
    }
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
            unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) };
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

/// Sets RLIMIT_RTTIME no higher than it is (rtkit insists on one; the kernel enforces it).
fn limit_rttime() -> std::io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTTIME, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let hard = limit.rlim_max.min(RTTIME_HARD_US);
    let wanted = libc::rlimit { rlim_cur: limit.rlim_cur.min(RTTIME_SOFT_US).min(hard), rlim_max: hard };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_RTTIME, &wanted) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
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

/// The scheduling policy of thread `tid`.
#[cfg(test)]
fn policy_of(tid: i32) -> i32 {
    // SAFETY: sched_getscheduler only reads.
    unsafe { libc::sched_getscheduler(tid) }
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

    #[test]
    fn off_is_off() {
        let grant = Grant::frame_thread(false, true);
        assert!(!grant.frame_thread_granted());
        assert_eq!(policy_of(0), libc::SCHED_OTHER);
    }
}
