//! Lesson L7.3, priority inversion: three SCHED_FIFO threads on one CPU. L (priority 10) takes
//! a mutex and computes for a while; H (30) then needs the mutex; M (20) then spins without
//! touching it. With a plain mutex M keeps L off the CPU, so H waits for all of M's spin; with
//! a priority-inheritance mutex (PTHREAD_PRIO_INHERIT) L runs at H's priority until it unlocks.
//! H's wait is measured both ways. In the course's exercise L sleeps while holding the lock and
//! nothing is pinned, so H waits about the same with or without inheritance: measured too.
//!
//! Run with: cargo run --release --example l7_3_inversion

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;

/// A pthread mutex with a chosen protocol (PTHREAD_PRIO_NONE or PTHREAD_PRIO_INHERIT); std's
/// Mutex has no protocol setting.
struct PiMutex(Box<std::cell::UnsafeCell<libc::pthread_mutex_t>>);

// SAFETY: a pthread mutex is made to be locked and unlocked from several threads.
unsafe impl Sync for PiMutex {}
// SAFETY: it is not tied to the thread that created it.
unsafe impl Send for PiMutex {}

impl PiMutex {
    fn new(protocol: i32) -> Result<Self, String> {
        let cell = Box::new(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
        // SAFETY: attr is initialised before use and destroyed after; the mutex lives in a Box
        // that never moves, initialised once here.
        let rc = unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            let rc = libc::pthread_mutexattr_setprotocol(&mut attr, protocol);
            let rc = if rc == 0 { libc::pthread_mutex_init(cell.get(), &attr) } else { rc };
            libc::pthread_mutexattr_destroy(&mut attr);
            rc
        };
        if rc == 0 {
            Ok(Self(cell))
        } else {
            Err(errno_name(rc))
        }
    }

    fn lock(&self) {
        // SAFETY: the mutex was initialised in `new` and is not destroyed while borrowed.
        let rc = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_lock");
    }

    fn unlock(&self) {
        // SAFETY: called only by the thread that locked it (see `run`).
        let rc = unsafe { libc::pthread_mutex_unlock(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_unlock");
    }
}

impl Drop for PiMutex {
    fn drop(&mut self) {
        // SAFETY: no thread holds or waits on the mutex once its owner drops it.
        unsafe { libc::pthread_mutex_destroy(self.0.get()) };
    }
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One round on CPU 0; returns H's wait for the mutex in ms, or why it could not run.
fn run(protocol: i32, hold: Duration, m_spin: Duration, sleep_in_lock: bool) -> Result<f64, String> {
    let mutex = Arc::new(PiMutex::new(protocol)?);
    let start = Arc::new(Barrier::new(3));
    let locked = Arc::new(AtomicBool::new(false));
    let thread = |priority: i32, body: Box<dyn FnOnce() -> f64 + Send>| {
        let start = Arc::clone(&start);
        std::thread::spawn(move || -> Result<f64, String> {
            pin_thread(0)?;
            set_thread_policy(libc::SCHED_FIFO, priority)?;
            start.wait();
            Ok(body())
        })
    };
    let (m1, l1) = (Arc::clone(&mutex), Arc::clone(&locked));
    let low = thread(
        10,
        Box::new(move || {
            m1.lock();
            l1.store(true, Ordering::Release);
            if sleep_in_lock {
                std::thread::sleep(m_spin * 3 / 2); // the course's L: sleeps holding the lock, past M's spin
            } else {
                spin(hold); // L's critical section: work
            }
            m1.unlock();
            0.0
        }),
    );
    let (m2, l2) = (Arc::clone(&mutex), Arc::clone(&locked));
    let high = thread(
        30,
        Box::new(move || {
            while !l2.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(200)); // let L take the lock first
            }
            std::thread::sleep(Duration::from_millis(2));
            let t = Instant::now();
            m2.lock();
            let waited = t.elapsed().as_secs_f64() * 1e3;
            m2.unlock();
            waited
        }),
    );
    let l3 = Arc::clone(&locked);
    let middle = thread(
        20,
        Box::new(move || {
            while !l3.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_millis(3)); // after H has blocked
            spin(m_spin); // M never touches the mutex
            0.0
        }),
    );
    let h = high.join().map_err(|_| "H panicked".to_string())?;
    low.join().map_err(|_| "L panicked".to_string())??;
    middle.join().map_err(|_| "M panicked".to_string())??;
    h
}

fn main() {
    header("L7.3", "priority inversion on one CPU, with and without priority inheritance");
    println!("rights: {}", realtime_rights());
    let hold = Duration::from_millis(pick(20, 10));
    let m_spin = Duration::from_millis(pick(200, 100));
    let rounds = pick(5, 2);
    println!(
        "L holds the mutex for {} ms of work; H asks 2 ms after L locks; M spins {} ms from 3 ms after; all SCHED_FIFO on CPU 0; {rounds} rounds each",
        hold.as_millis(),
        m_spin.as_millis()
    );
    let mut results = Vec::new();
    for sleep_in_lock in [false, true] {
        for (label, protocol) in
            [("plain mutex", libc::PTHREAD_PRIO_NONE), ("priority inheritance", libc::PTHREAD_PRIO_INHERIT)]
        {
            let mut waits = Vec::new();
            for _ in 0..rounds {
                match run(protocol, hold, m_spin, sleep_in_lock) {
                    Ok(ms) => waits.push(ms),
                    Err(e) => {
                        eprintln!("cannot run the inversion ({label}): {e}; nothing measured");
                        std::process::exit(1);
                    }
                }
            }
            let how = if sleep_in_lock { "L sleeps" } else { "L works" };
            results.push(report(&format!("H's wait, {how}, {label}"), &waits, "ms"));
        }
    }
    let (plain, pi, sleep_plain, sleep_pi) = (results[0], results[1], results[2], results[3]);
    let (hold_ms, spin_ms) = (hold.as_secs_f64() * 1e3, m_spin.as_secs_f64() * 1e3);
    verdict(
        "H waits 3200 ms; with priority inheritance 1050 ms",
        &format!(
            "L working in the lock: H waited p50 {:.1} ms (max {:.1}) with a plain mutex, {:.1} ms (max {:.1}) with inheritance; L sleeping {:.0} ms in the lock (the course's exercise): {:.1} vs {:.1} ms",
            plain.p50, plain.max, pi.p50, pi.max, m_spin.as_secs_f64() * 1.5e3, sleep_plain.p50, sleep_pi.p50
        ),
        &format!(
            "with a plain mutex H's wait {} M's {spin_ms:.0} ms spin; with inheritance it {} L's {hold_ms:.0} ms critical section; when L sleeps {:.0} ms in the lock (past M's spin), inheritance changed H's wait by {:.1} ms: H waited out L's sleep either way, which is what the course's exercise times",
            if plain.p50 >= spin_ms * 0.9 { "covered" } else { "did not cover" },
            if pi.p50 <= hold_ms { "stayed within" } else { "exceeded" },
            spin_ms * 1.5,
            (sleep_plain.p50 - sleep_pi.p50).abs()
        ),
    );
    println!(
        "note (history, not measured): on Mars Pathfinder (1997) the LOW-priority meteorological (ASI/MET) task held the information-bus mutex, the HIGH-priority bus distribution task (bc_dist) waited for it while medium-priority tasks ran, and the bus scheduler (bc_sched), finding bc_dist's cycle unfinished, reset the computer; enabling priority inheritance on that mutex fixed it. The course swaps these roles."
    );
}
