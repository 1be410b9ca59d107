//! Opening a sound device off the frame thread. A sound server that accepts the connection but
//! never answers blocks an open for as long as its client library waits (PulseAudio: 30 s), so
//! every open runs on a helper thread: at start-up the caller waits a bounded time for it, and
//! after a device is lost the frame loop polls for the answer once a frame while the game keeps
//! running silently, retrying with backoff. One attempt is in flight at a time: a hung open is
//! waited out, not piled up with more threads.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// How long an open may take before the device counts as unavailable (start-up) or slow (a
/// reopen; said once).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(4);

/// The answer of an open running on a helper thread.
pub type Pending<T> = Receiver<Result<T, String>>;

/// Runs `open` on a helper thread named `name`; its one-line result arrives on the channel.
pub fn spawn_open<T, F>(name: &str, open: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let worker_tx = tx.clone();
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        let _platform = crate::reload::platform_thread();
        let _ = worker_tx.send(open());
    });
    if let Err(e) = spawned {
        let _ = tx.send(Err(format!("cannot start the open thread: {e}")));
    }
    rx
}

/// Waits up to `timeout` for a start-up open; a device that does not answer in time is an
/// error naming `what` (its thread is left to finish or hang on its own).
pub fn wait_for_open<T>(pending: Pending<T>, timeout: Duration, what: &str) -> Result<T, String> {
    match pending.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(format!("{what} did not answer within {} s", timeout.as_secs_f32())),
        Err(RecvTimeoutError::Disconnected) => Err(format!("{what}: the open thread ended without an answer")),
    }
}

/// The wait before the next attempt: `FIRST_RETRY`, doubling up to `MAX_RETRY`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next_attempt: Instant,
    delay: Duration,
}

impl Backoff {
    /// The first attempt is due `FIRST_RETRY` after `now` (a device that just went away is
    /// rarely back at once).
    pub fn new(now: Instant) -> Self {
        Self { next_attempt: now + FIRST_RETRY, delay: FIRST_RETRY }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_attempt
    }

    /// An attempt failed at `now`: wait the current delay, and double it for next time.
    pub fn failed(&mut self, now: Instant) {
        self.next_attempt = now + self.delay;
        self.delay = (self.delay * 2).min(MAX_RETRY);
    }
}

/// A lost device being reopened. Created when the device is lost; polled once a frame.
pub struct Reopen<T> {
    /// For the one "taking long" line, e.g. "alsa: reopening `default`".
    what: String,
    pending: Option<Pending<T>>,
    backoff: Backoff,
    lost_at: Instant,
    attempts: u32,
    attempt_started: Instant,
    said_slow: bool,
}

impl<T> Reopen<T> {
    pub fn new(what: String, now: Instant) -> Self {
        Self {
            what,
            pending: None,
            backoff: Backoff::new(now),
            lost_at: now,
            attempts: 0,
            attempt_started: now,
            said_slow: false,
        }
    }

    /// Collects a finished attempt (`Some` when it opened), or starts the next one with
    /// `spawn` when due. Never blocks.
    pub fn poll(&mut self, now: Instant, spawn: impl FnOnce() -> Pending<T>) -> Option<T> {
        if let Some(pending) = self.pending.as_ref() {
            return match pending.try_recv() {
                Ok(Ok(opened)) => {
                    self.pending = None;
                    Some(opened)
                }
                Ok(Err(_)) | Err(TryRecvError::Disconnected) => {
                    self.pending = None;
                    self.backoff.failed(now);
                    None
                }
                Err(TryRecvError::Empty) => {
                    self.say_if_slow(now);
                    None
                }
            };
        }
        if self.backoff.due(now) {
            self.pending = Some(spawn());
            self.attempt_started = now;
            self.said_slow = false;
            self.attempts += 1;
        }
        None
    }

    /// The caller turned down what an attempt opened (e.g. it came back at another rate):
    /// try again after the backoff.
    pub fn reject(&mut self, now: Instant) {
        self.backoff.failed(now);
    }

    pub fn lost_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.lost_at)
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn say_if_slow(&mut self, now: Instant) {
        if !self.said_slow && now.saturating_duration_since(self.attempt_started) > OPEN_TIMEOUT {
            log::warn!("{} has taken over {} s; still waiting for it", self.what, OPEN_TIMEOUT.as_secs());
            self.said_slow = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls until the attempt in flight has answered.
    fn settle<T>(r: &mut Reopen<T>, now: Instant) -> Option<T> {
        for _ in 0..1000 {
            r.pending.as_ref()?; // nothing in flight: the attempt already answered
            if let Some(t) = r.poll(now, || unreachable!("an attempt is in flight")) {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the open thread never answered");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let now = Instant::now();
        let mut b = Backoff::new(now);
        assert!(!b.due(now) && b.due(now + FIRST_RETRY));
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(b.delay);
            b.failed(now);
        }
        assert_eq!(waits[..5], [250, 500, 1000, 2000, 4000].map(Duration::from_millis));
        assert_eq!(b.delay, MAX_RETRY);
        assert!(!b.due(now + MAX_RETRY - Duration::from_millis(1)) && b.due(now + MAX_RETRY));
    }

    #[test]
    fn failures_back_off_and_a_success_is_handed_over() {
        let t0 = Instant::now();
        let mut r: Reopen<u32> = Reopen::new("test: reopening".into(), t0);
        assert!(r.poll(t0, || panic!("not due yet")).is_none());
        let t1 = t0 + FIRST_RETRY;
        assert!(r.poll(t1, || spawn_open("t", || Err("refused".into()))).is_none());
        assert_eq!(settle(&mut r, t1), None, "a failed attempt hands nothing over");
        assert!(r.poll(t1 + Duration::from_millis(249), || panic!("inside the backoff")).is_none());
        let t2 = t1 + FIRST_RETRY;
        assert!(r.poll(t2, || spawn_open("t", || Ok(7))).is_none());
        assert_eq!(settle(&mut r, t2), Some(7));
        assert_eq!(r.attempts(), 2);
        assert_eq!(r.lost_for(t2), 2 * FIRST_RETRY);
    }

    #[test]
    fn a_start_up_open_that_hangs_is_a_one_line_error() {
        // The sender stays alive and silent: a device that never answers.
        let (tx, rx) = mpsc::channel::<Result<u32, String>>();
        let e = wait_for_open(rx, Duration::from_millis(20), "device `x`").unwrap_err();
        drop(tx);
        assert_eq!(e, "device `x` did not answer within 0.02 s");
        let rx = spawn_open("t", || Ok::<u32, String>(3));
        assert_eq!(wait_for_open(rx, Duration::from_secs(5), "x"), Ok(3));
    }
}
