//! The ALSA backend's audio I/O thread (`--alsa-io thread`, issue 12): it owns the PCM and tops
//! the device up every period from a lock-free ring (`sample_ring.rs`), which the frame loop
//! fills once a frame from the stack buffer the game wrote into.
//!
//! Why: written once per 16.7 ms frame, the device's queue must hold a whole frame on top of
//! the latency, so its buffer is large (the pulse plugin passes buffer and period on to the
//! server as `tlength` and `minreq`), and just before each frame's write the queue is down to
//! the target. Through PipeWire at 5 ms that is below one 256-frame quantum (5.3 ms), the
//! least PipeWire's pulse server runs a pulse client at (`pulse.min.quantum`): one quantum of
//! silence, tens of times a minute. Here the device's buffer is the latency alone, refilled
//! every period, and the frame's sound waits in the ring. What the ring keeps beyond the target
//! and the frame is one server cycle (alsa.rs, `SERVER_CYCLE_FRAMES_48K`): measured through
//! PipeWire at 5 ms (8 s runs, recorder and server promoted), 20-21 gaps without it, 0-6 with
//! it. The sound then reaches the server in period-sized pieces with a cycle to spare,
//! whenever the frame loop wrote last.
//!
//! The thread: waits for the device (`snd_pcm_wait`, bounded), writes what the ring holds up to
//! the free space straight from the ring's memory, and publishes its figures through atomics:
//! the play position with the time it was measured (a seqlock, so the pair is consistent), the
//! delay, underruns and its state. After its start it makes no allocation, takes no lock and no
//! system call but the device's wait, write and status, and a sleep of one period when the
//! ring is empty (the device cannot be fed then). Faults (a lost device, which it logs, and the
//! drain at the end) are allowed more. It is named `handmade-audio` so platform/audio/rt.rs
//! finds and promotes it with the sound library's threads.
//!
//! A lost device: the thread drops it, says so in one line and waits for another; the frame
//! loop reopens it (reopen.rs, as for the once-a-frame mode) and hands it over on a channel.
//! The thread, and its priority, stay.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::*};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alsa::pcm::State;
use alsa::Output;

use super::alsa::{last_alsa_message, write_all, Device};
use super::sample_ring::{self, Consumer, Producer};
use crate::seqlock::SeqLock;

/// What the I/O thread is doing, as the frame side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoState {
    /// Feeding a device: the frame side may push.
    Running,
    /// The device is suspended (ESTRPIPE); resume is retried every period.
    Suspended,
    /// The device is gone; the thread waits for the frame side to hand it another.
    Lost,
}

/// The thread's name: platform/audio/rt.rs promotes threads by name.
pub const THREAD_NAME: &str = "handmade-audio";
/// The longest the thread waits on the device before it looks at its flags again.
const MAX_WAIT_MS: u32 = 20;
/// EIO answers in a row taken as a stream to prepare again rather than a lost device.
const EIO_RETRIES: u32 = 2;
/// The longest `finish` waits for the ring and the device to play out.
const DRAIN_LIMIT: Duration = Duration::from_millis(700);

/// A measurement of the device, published as one consistent snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Frames the device has played since it (re)started: written, its start silence
    /// included, minus its delay.
    pub played: i64,
    /// When it was measured, in ns from the backend's epoch.
    pub at_ns: u64,
    pub delay: i64,
}

/// Everything the two threads share. Only atomics: the seqlock's words are atomics too, so a
/// torn read is a retry, never undefined behaviour.
struct Shared {
    /// `Snapshot`'s fields, as words: played, at_ns, delay.
    snapshot: SeqLock<3>,
    state: AtomicU8,
    underruns: AtomicU64,
    /// Of those, the ones the device reported itself (EPIPE): heard gaps for certain.
    epipes: AtomicU64,
    stop: AtomicBool,
    drain: AtomicBool,
    done: AtomicBool,
}

impl Shared {
    /// Writer side (the I/O thread only).
    fn publish(&self, s: Snapshot) {
        self.snapshot.publish([s.played as u64, s.at_ns, s.delay as u64]);
    }

    /// Reader side: `None` while a publish stays in the middle (`SeqLock`).
    fn snapshot(&self) -> Option<Snapshot> {
        let [played, at_ns, delay] = self.snapshot.try_read()?;
        Some(Snapshot { played: played as i64, at_ns, delay: delay as i64 })
    }

    fn set_state(&self, state: IoState) {
        self.state.store(state as u8, Release);
    }

    fn state(&self) -> IoState {
        match self.state.load(Acquire) {
            0 => IoState::Running,
            1 => IoState::Suspended,
            _ => IoState::Lost,
        }
    }
}

/// The frame side: the ring's producer, the thread's figures, the channel for a reopened
/// device. Everything here is allocated at open.
pub struct IoLink {
    ring: Producer,
    shared: Arc<Shared>,
    devices: SyncSender<(Device, usize)>,
    thread: Option<JoinHandle<()>>,
    /// Frames pushed since the device (re)started, plus the silence it started with: minus
    /// the play position, what is queued in the ring and the device together.
    queued_total: i64,
    capacity: usize,
    /// The snapshot read last (`snapshot`).
    last: Cell<Snapshot>,
}

impl IoLink {
    /// Starts the thread on a started `device` (`silence` frames queued in it). `epoch` is the
    /// clock the snapshots are timed on. Allocates (the ring, the thread): at open only.
    pub fn start(name: &str, device: Device, silence: usize, epoch: Instant) -> std::io::Result<Self> {
        let frame_bytes = if device.float { 8 } else { 4 };
        // The latency, a frame and a late frame's catch-up, as the once-a-frame buffer.
        let capacity = (device.pacing.target_frames + 3 * device.pacing.tick_frames) as usize;
        let (ring, consumer) = sample_ring::ring(capacity, frame_bytes);
        let shared = Arc::new(Shared {
            snapshot: SeqLock::new([0, 0, silence as u64]),
            state: AtomicU8::new(IoState::Running as u8),
            underruns: AtomicU64::new(0),
            epipes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            drain: AtomicBool::new(false),
            done: AtomicBool::new(false),
        });
        let (devices, handed) = sync_channel(1);
        let thread_shared = shared.clone();
        let name = name.to_string();
        let thread = std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
            let _platform = crate::reload::platform_thread();
            run(&name, consumer, &thread_shared, handed, (device, silence), epoch);
        })?;
        // Until the thread runs (named, its first measurement published): real-time priority
        // is given right after the open, to the threads found by name then (rt.rs).
        let until = Instant::now() + Duration::from_secs(1);
        while shared.snapshot.publishes() == 0 && !shared.done.load(Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let last = Cell::new(Snapshot { played: 0, at_ns: 0, delay: silence as i64 });
        Ok(Self { ring, shared, devices, thread: Some(thread), queued_total: silence as i64, capacity, last })
    }

    pub fn state(&self) -> IoState {
        self.shared.state()
    }

    /// The thread's last measurement, or the one read before if it is publishing a new one
    /// right now (it may have been preempted in the middle: the frame does not wait).
    pub fn snapshot(&self) -> Snapshot {
        if let Some(snapshot) = self.shared.snapshot() {
            self.last.set(snapshot);
        }
        self.last.get()
    }

    /// Frames in the ring and the device together at the last measurement.
    pub fn queued(&self, snapshot: &Snapshot) -> i64 {
        self.queued_total - snapshot.played
    }

    /// Room in the ring, in frames.
    pub fn room(&self) -> usize {
        self.capacity - self.ring.len()
    }

    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Relaxed)
    }

    /// The underruns the device reported itself (EPIPE), a count that only grows.
    pub fn epipes(&self) -> u64 {
        self.shared.epipes.load(Relaxed)
    }

    /// Queues interleaved device frames; returns how many fit.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = self.ring.push(bytes);
        self.queued_total += n as i64;
        n
    }

    /// Hands a reopened, started device to the thread (after it reported `Lost`). The frame
    /// side pushes again once the thread reports `Running`.
    pub fn hand_over(&mut self, device: Device, silence: usize) {
        self.queued_total = silence as i64;
        if self.devices.try_send((device, silence)).is_err() {
            log::warn!("alsa: the audio I/O thread has ended; the reopened device is not used");
        }
    }

    /// Lets the ring and the device play out (bounded), then ends the thread.
    pub fn finish(&mut self) {
        self.shared.drain.store(true, Release);
        self.stop_and_join(DRAIN_LIMIT);
    }

    fn stop_and_join(&mut self, limit: Duration) {
        self.shared.stop.store(true, Release);
        let until = Instant::now() + limit;
        while !self.shared.done.load(Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        // A thread stuck in the sound library is left behind rather than waited for.
        if let Some(thread) = self.thread.take().filter(|_| self.shared.done.load(Acquire)) {
            let _ = thread.join();
        }
    }
}

impl Drop for IoLink {
    fn drop(&mut self) {
        self.stop_and_join(Duration::from_millis(100));
    }
}

/// The thread: feeds each device it is given until it is lost or the frame side stops it.
fn run(
    name: &str,
    mut ring: Consumer,
    shared: &Shared,
    handed: Receiver<(Device, usize)>,
    first: (Device, usize),
    epoch: Instant,
) {
    // alsa-lib's messages on this thread go to a buffer too (the handler is per thread).
    let errors = Output::local_error_handler().ok();
    let mut next = Some(first);
    while !shared.stop.load(Acquire) {
        let Some((device, silence)) = next.take() else {
            match handed.recv_timeout(Duration::from_millis(u64::from(MAX_WAIT_MS))) {
                Ok(device) => next = Some(device),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            continue;
        };
        let mut feeder = Feeder::new(device, silence, epoch);
        if let Err(e) = feeder.run(&mut ring, shared) {
            let detail = errors.as_ref().map(last_alsa_message).unwrap_or_default();
            log::warn!("alsa: lost `{name}` ({e}{detail}); the game keeps running silently while it is reopened");
            drop(feeder);
            ring.clear();
            shared.set_state(IoState::Lost);
        }
    }
    shared.done.store(true, Release);
}

/// One device being fed.
struct Feeder {
    device: Device,
    epoch: Instant,
    /// Frames written since it started, its start silence included.
    fed: i64,
    /// The queue is empty and has not held anything since: an empty queue then is not another
    /// underrun (nor is the always-empty queue of a device that reports no delay).
    dry: bool,
    suspended: bool,
    /// EIO answers since the last good measurement (see `recover`).
    eio_in_a_row: u32,
    /// An EPIPE was answered by a prepare, and nothing was measured or taken since (see
    /// `recover`).
    epipe_pending: bool,
    period: Duration,
    wait_ms: u32,
}

impl Feeder {
    fn new(device: Device, silence: usize, epoch: Instant) -> Self {
        let period_ns = u64::from(device.period_frames) * 1_000_000_000 / u64::from(device.rate.max(1));
        let wait_ms = ((2 * period_ns / 1_000_000) as u32 + 1).min(MAX_WAIT_MS);
        Self {
            device,
            epoch,
            fed: silence as i64,
            dry: true,
            suspended: false,
            eio_in_a_row: 0,
            epipe_pending: false,
            period: Duration::from_nanos(period_ns),
            wait_ms,
        }
    }

    /// Feeds until stopped (`Ok`) or the device is gone (`Err`).
    fn run(&mut self, ring: &mut Consumer, shared: &Shared) -> alsa::Result<()> {
        // A device handed over after a loss starts afresh: what the ring held was for the old one.
        ring.clear();
        self.measure(shared)?;
        shared.set_state(IoState::Running);
        loop {
            if shared.stop.load(Acquire) {
                if shared.drain.load(Acquire) {
                    self.drain(ring, shared);
                }
                return Ok(());
            }
            if self.suspended {
                self.try_resume(shared);
                std::thread::sleep(self.period);
                continue;
            }
            let avail = self.measure(shared)?;
            let n = ring.len().min(avail);
            self.feed(ring, n, shared)?;
            if ring.is_empty() {
                // Nothing to give the device: it cannot be fed before the next frame's write.
                std::thread::sleep(self.period);
            } else if let Err(e) = self.device.pcm.wait(Some(self.wait_ms)) {
                self.recover(e, shared)?;
            }
        }
    }

    /// Reads the delay and publishes the play position; returns the free space.
    fn measure(&mut self, shared: &Shared) -> alsa::Result<usize> {
        let at_ns = self.epoch.elapsed().as_nanos() as u64;
        match self.device.pcm.avail_delay() {
            Ok((avail, delay)) => {
                // PulseAudio's plugin reports EPIPE only with `handle_underrun`: a running
                // stream whose queue emptied has underrun all the same (once per emptying).
                if delay <= 0 && !self.dry && self.device.pcm.state() == State::Running {
                    shared.underruns.fetch_add(1, Relaxed);
                }
                self.dry = delay <= 0;
                self.eio_in_a_row = 0;
                self.epipe_pending = false;
                shared.publish(Snapshot { played: self.fed - delay.max(0), at_ns, delay });
                Ok(avail.max(0) as usize)
            }
            Err(e) => self.recover(e, shared).map(|()| 0),
        }
    }

    /// Writes `frames` from the ring, in place; the device may take fewer.
    fn feed(&mut self, ring: &mut Consumer, mut frames: usize, shared: &Shared) -> alsa::Result<()> {
        while frames > 0 {
            let bytes = ring.readable(frames);
            let offered = bytes.len() / ring.frame_bytes();
            if offered == 0 {
                break;
            }
            let (taken, error) = match write_all(&self.device.pcm, bytes) {
                Ok(taken) => (taken, None),
                Err((taken, e)) => (taken, Some(e)),
            };
            ring.consume(taken);
            self.fed += taken as i64;
            self.epipe_pending &= taken == 0;
            frames -= taken.min(frames);
            match error {
                // `write_all` prepared the stream and its retry was taken: the underrun is
                // over (preparing again would drop what the retry queued).
                Some(e) if e.errno() == libc::EPIPE && taken > 0 => {
                    shared.underruns.fetch_add(1, Relaxed);
                    shared.epipes.fetch_add(1, Relaxed);
                }
                Some(e) => return self.recover(e, shared),
                None => {}
            }
            if taken < offered {
                break;
            }
        }
        Ok(())
    }

    /// Underruns and suspends are recovered here; anything else means the device is gone.
    fn recover(&mut self, error: alsa::Error, shared: &Shared) -> alsa::Result<()> {
        match error.errno() {
            // PipeWire's ALSA plugin answers EPIPE to everything once its connection to the
            // server broke, and `prepare` still succeeds (the loop would spin): an underrun
            // again straight after a prepare, with nothing measured or taken between, is a
            // lost device.
            libc::EPIPE if self.epipe_pending => Err(error),
            libc::EPIPE => {
                shared.underruns.fetch_add(1, Relaxed);
                shared.epipes.fetch_add(1, Relaxed);
                self.dry = true;
                self.epipe_pending = true;
                // Not `snd_pcm_recover`: it prints, and sleeps for ESTRPIPE.
                self.device.pcm.prepare()
            }
            libc::ESTRPIPE => {
                self.suspended = true;
                shared.set_state(IoState::Suspended);
                self.try_resume(shared);
                Ok(())
            }
            libc::EAGAIN => Ok(()),
            // Seen once in a loaded test run: the pulse plugin answered EIO with its server
            // alive (the reopen 0.25 s later found it). A stream that prepares again was not
            // lost, only its queue; a dead server fails the prepare, or the next tries.
            libc::EIO if self.eio_in_a_row < EIO_RETRIES => {
                self.eio_in_a_row += 1;
                shared.underruns.fetch_add(1, Relaxed);
                self.dry = true;
                self.device.pcm.prepare()
            }
            _ => Err(error),
        }
    }

    fn try_resume(&mut self, shared: &Shared) {
        self.suspended = match self.device.pcm.resume() {
            Ok(()) => false,
            Err(e) if e.errno() == libc::EAGAIN => true,
            // Devices that cannot resume in place start over from prepared.
            Err(_) => self.device.pcm.prepare().is_err(),
        };
        if !self.suspended {
            shared.set_state(IoState::Running);
        }
    }

    /// The end of the run: what the ring holds goes to the device, then the device plays out
    /// (bounded by `DRAIN_LIMIT` overall).
    fn drain(&mut self, ring: &mut Consumer, shared: &Shared) {
        let until = Instant::now() + DRAIN_LIMIT - Duration::from_millis(100);
        while !ring.is_empty() && !self.suspended && Instant::now() < until {
            let Ok(avail) = self.measure(shared) else { return };
            if self.feed(ring, ring.len().min(avail), shared).is_err() {
                return;
            }
            let _ = self.device.pcm.wait(Some(self.wait_ms));
        }
        let queued = self.device.pcm.delay().unwrap_or(0).max(0) as u64;
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(Duration::from_millis(queued * 1000 / u64::from(self.device.rate.max(1))).min(left));
    }
}
