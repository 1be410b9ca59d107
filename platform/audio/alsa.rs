//! The ALSA backend (`--audio alsa`): a non-blocking playback PCM taking interleaved F32 (or S16
//! where the device does not take float), kept `latency` ahead of the play position from the
//! device's own delay figure, Handmade Hero style. Underruns and suspends are recovered inside
//! the frame without blocking; a device that goes away (a sound server that dies) is reopened
//! on a helper thread with backoff while the game keeps running silently.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, State, IO, PCM};
use alsa::{Direction, Output, ValueOr};
use handmade_api::MAX_SOUND_FRAMES;

use super::{interleave_f32, interleave_i16, AudioDesc, AudioError, AudioOutput, AudioStatus};

/// How long the first open may take before the device counts as unavailable: a sound server
/// that accepts the connection but never answers would otherwise hang start-up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(4);

pub struct AlsaAudio {
    settings: Settings,
    stream: Option<Stream>,
    recovery: Recovery,
    interleaved_f32: Vec<f32>,
    interleaved_i16: Vec<i16>,
    /// Set while the device is suspended (ESTRPIPE): resume is retried once per frame.
    suspended: bool,
    underruns: u64,
    queued_frames: u32,
    queued_sum: f64,
    queued_count: u64,
    /// Keeps alsa-lib's error messages (it prints them to stderr by default) in a buffer on
    /// the frame thread; we quote the last one in our own one-line errors.
    errors: Rc<RefCell<Output>>,
}

/// What a (re)open needs; plain data so a helper thread can take a copy.
#[derive(Debug, Clone)]
struct Settings {
    device: String,
    sample_rate: u32,
    /// Queue depth to find at each write (`latency_ms`), in frames.
    target_frames: u32,
    /// One game frame of sound: what the loop writes per frame once the queue is at target.
    tick_frames: u32,
}

/// A configured PCM and the single IO object that writes to it. The IO borrows the PCM, so the
/// PCM lives on the heap behind a raw pointer that only `Drop` frees, after the IO.
struct Stream {
    writer: ManuallyDrop<Writer>,
    pcm: NonNull<PCM>,
    buffer_frames: u32,
}

enum Writer {
    F32(IO<'static, f32>),
    I16(IO<'static, i16>),
}

/// The result of the blocking part of opening; `PCM` is `Send`, so it crosses threads.
struct Opened {
    pcm: PCM,
    float: bool,
    rate: u32,
    buffer_frames: u32,
}

/// Device-loss bookkeeping: one reopen attempt in flight at a time, doubling the wait between
/// attempts up to `MAX_RETRY`.
struct Recovery {
    pending: Option<Receiver<Result<Opened, String>>>,
    next_attempt: Instant,
    backoff: Duration,
    lost_at: Option<Instant>,
    attempts: u32,
    attempt_started: Instant,
    said_slow: bool,
}

impl AlsaAudio {
    pub fn open(desc: &AudioDesc) -> Result<Self, AudioError> {
        let errors = Output::local_error_handler().map_err(|e| unavailable(e.to_string()))?;
        let settings = Settings::from_desc(desc);
        let opened = match spawn_open(settings.clone()).recv_timeout(OPEN_TIMEOUT) {
            Ok(result) => result.map_err(unavailable)?,
            Err(_) => {
                return Err(unavailable(format!(
                    "device `{}` did not open within {} s",
                    settings.device,
                    OPEN_TIMEOUT.as_secs()
                )))
            }
        };
        let rate = opened.rate;
        let float = opened.float;
        let stream = Stream::new(opened).map_err(|e| unavailable(e.to_string()))?;
        stream.start_with_silence(settings.target_frames);
        log::debug!(
            "alsa: `{}` at {rate} Hz, {}, buffer {} frames, keeping {} frames queued",
            settings.device,
            if float { "interleaved F32" } else { "interleaved S16" },
            stream.buffer_frames,
            settings.target_frames,
        );
        Ok(Self {
            settings: Settings { sample_rate: rate, ..settings },
            stream: Some(stream),
            recovery: Recovery::new(),
            interleaved_f32: vec![0.0; 2 * MAX_SOUND_FRAMES],
            interleaved_i16: vec![0; 2 * MAX_SOUND_FRAMES],
            suspended: false,
            underruns: 0,
            queued_frames: 0,
            queued_sum: 0.0,
            queued_count: 0,
            errors,
        })
    }

    /// Handles an error from the delay query or the write: underruns and suspends are
    /// recovered here and now; anything else means the device is gone.
    fn recover(&mut self, error: alsa::Error) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        let recovered = match error.errno() {
            libc::EPIPE => {
                self.underruns += 1;
                // Not `snd_pcm_recover`: with `silent = 0` it prints, and for ESTRPIPE it
                // sleeps a second per attempt. `prepare` is immediate.
                stream.pcm().prepare().is_ok()
            }
            libc::ESTRPIPE => {
                self.suspended = true;
                self.try_resume();
                true
            }
            libc::EAGAIN => true,
            _ => false,
        };
        if !recovered {
            self.lose_device(&error);
        }
    }

    /// One non-blocking resume attempt; EAGAIN means "still suspended, ask again next frame".
    fn try_resume(&mut self) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        match stream.pcm().resume() {
            Ok(()) => self.suspended = false,
            Err(e) if e.errno() == libc::EAGAIN => {}
            // Devices that cannot resume in place start over from prepared.
            Err(_) => self.suspended = stream.pcm().prepare().is_err(),
        }
    }

    fn lose_device(&mut self, error: &alsa::Error) {
        let detail = last_alsa_message(&self.errors);
        log::warn!(
            "alsa: lost `{}` ({error}{detail}); the game keeps running silently while it is reopened",
            self.settings.device
        );
        self.stream = None;
        self.suspended = false;
        self.recovery.start(Instant::now());
    }

    /// While the device is gone: collect a finished reopen, or start the next one when due.
    fn poll_reopen(&mut self) {
        let now = Instant::now();
        match self.recovery.poll(now) {
            // The game renders at the rate it was given at start-up: a device that comes back
            // at another rate would play it at the wrong pitch, so that is another failure.
            Some(Ok(opened)) if opened.rate != self.settings.sample_rate => {
                log::warn!(
                    "alsa: `{}` came back at {} Hz, not {} Hz; trying again",
                    self.settings.device,
                    opened.rate,
                    self.settings.sample_rate
                );
                self.recovery.schedule_next(now);
            }
            Some(Ok(opened)) => match Stream::new(opened) {
                Ok(stream) => {
                    stream.start_with_silence(self.settings.target_frames);
                    let lost_for = self.recovery.lost_at.map(|t| now - t).unwrap_or_default();
                    log::info!(
                        "alsa: `{}` reopened after {:.1} s ({} attempts)",
                        self.settings.device,
                        lost_for.as_secs_f64(),
                        self.recovery.attempts
                    );
                    self.stream = Some(stream);
                    self.recovery = Recovery::new();
                }
                Err(_) => self.recovery.schedule_next(now),
            },
            Some(Err(_)) => self.recovery.schedule_next(now),
            None if self.recovery.due(now) => {
                self.recovery.pending = Some(spawn_open(self.settings.clone()));
                self.recovery.attempt_started = now;
                self.recovery.said_slow = false;
                self.recovery.attempts += 1;
            }
            // An open that hangs (a sound server that accepts but never answers) is waited
            // out, not piled up with more threads; say so once.
            None if self.recovery.pending.is_some()
                && !self.recovery.said_slow
                && now - self.recovery.attempt_started > OPEN_TIMEOUT =>
            {
                log::warn!(
                    "alsa: reopening `{}` has taken over {} s; still waiting for it",
                    self.settings.device,
                    OPEN_TIMEOUT.as_secs()
                );
                self.recovery.said_slow = true;
            }
            None => {}
        }
    }

    fn record_delay(&mut self, delay: i64) {
        self.queued_frames = delay.clamp(0, i64::from(u32::MAX)) as u32;
        self.queued_sum += f64::from(self.queued_frames);
        self.queued_count += 1;
    }
}

impl AudioOutput for AlsaAudio {
    fn name(&self) -> &'static str {
        "alsa"
    }

    fn sample_rate(&self) -> u32 {
        self.settings.sample_rate
    }

    fn is_paced(&self) -> bool {
        true
    }

    /// HMH-style: the device's delay says how much is still queued; write what brings it back
    /// to the target plus the frame about to pass, limited by the free space in the buffer.
    fn frames_wanted(&mut self) -> usize {
        let tick = self.settings.tick_frames as usize;
        if self.suspended {
            self.try_resume();
        }
        let Some(stream) = self.stream.as_ref() else {
            return tick; // no device: keep the game's sound clock running at the frame rate
        };
        if self.suspended {
            return tick;
        }
        match stream.pcm().avail_delay() {
            Ok((avail, delay)) => {
                log::trace!("avail {avail} delay {delay} state {:?}", stream.pcm().state());
                // PulseAudio's ALSA plugin only reports EPIPE with `handle_underrun`; a running
                // stream whose queue is empty has underrun all the same.
                let ran_dry = delay <= 0 && stream.pcm().state() == State::Running;
                self.underruns += u64::from(ran_dry);
                self.record_delay(delay);
                let goal = i64::from(self.settings.target_frames + self.settings.tick_frames);
                (goal - delay).clamp(0, avail.max(0)).min(MAX_SOUND_FRAMES as i64) as usize
            }
            Err(e) => {
                self.recover(e);
                // After an underrun the queue is empty: refill to the goal.
                let goal = (self.settings.target_frames + self.settings.tick_frames) as usize;
                goal.min(MAX_SOUND_FRAMES)
            }
        }
    }

    fn write(&mut self, left: &[f32], right: &[f32]) -> Result<usize, AudioError> {
        if self.stream.is_none() {
            self.poll_reopen();
            return Ok(0);
        }
        if self.suspended || left.is_empty() {
            return Ok(0);
        }
        let n = left.len().min(MAX_SOUND_FRAMES);
        let (left, right) = (&left[..n], &right[..n]);
        let stream = self.stream.as_ref().expect("checked above");
        let result = match &*stream.writer {
            Writer::F32(io) => {
                let out = &mut self.interleaved_f32[..2 * n];
                interleave_f32(left, right, out);
                write_all(stream.pcm(), io, out)
            }
            Writer::I16(io) => {
                let out = &mut self.interleaved_i16[..2 * n];
                interleave_i16(left, right, out);
                write_all(stream.pcm(), io, out)
            }
        };
        match result {
            Ok(written) => Ok(written),
            Err((written, e)) => {
                self.recover(e);
                Ok(written)
            }
        }
    }

    fn status(&self) -> AudioStatus {
        AudioStatus {
            queued_frames: self.queued_frames,
            buffer_frames: self.stream.as_ref().map_or(0, |s| s.buffer_frames),
            underruns: self.underruns,
            mean_queued_frames: mean(self.queued_sum, self.queued_count),
        }
    }

    /// Lets what is queued play out (bounded), then closes the device.
    fn finish(&mut self) -> Result<(), AudioError> {
        if let Some(stream) = self.stream.take() {
            let queued = stream.pcm().delay().unwrap_or(0).max(0) as u64;
            let ms = (queued * 1000 / u64::from(self.settings.sample_rate.max(1))).min(500);
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    }
}

/// Writes interleaved frames; after an underrun (EPIPE) the stream is prepared and the write
/// retried once, so the frame's sound is not lost. Returns frames taken, or how many were
/// taken before an error it could not handle.
fn write_all<S: Copy>(pcm: &PCM, io: &IO<'_, S>, out: &[S]) -> Result<usize, (usize, alsa::Error)> {
    match io.writei(out) {
        Ok(frames) => Ok(frames),
        Err(e) if e.errno() == libc::EPIPE && pcm.prepare().is_ok() => match io.writei(out) {
            Ok(frames) => Err((frames, e)),
            Err(again) => Err((0, again)),
        },
        Err(e) => Err((0, e)),
    }
}

fn mean(sum: f64, count: u64) -> f32 {
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

fn unavailable(reason: String) -> AudioError {
    AudioError::Unavailable { backend: "alsa", reason }
}

/// The last line alsa-lib reported on this thread, as `: <text>`, or nothing.
fn last_alsa_message(errors: &Rc<RefCell<Output>>) -> String {
    errors.borrow().buffer_string(|bytes| {
        String::from_utf8_lossy(bytes)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default()
    })
}

impl Settings {
    fn from_desc(desc: &AudioDesc) -> Self {
        let rate = desc.sample_rate;
        let tick = (rate / desc.fps.max(1)).max(1);
        let target = (f64::from(desc.latency_ms.max(0.0)) * f64::from(rate) / 1000.0).round();
        Self {
            device: desc.alsa_device.clone(),
            sample_rate: rate,
            target_frames: (target as u32).clamp(1, MAX_SOUND_FRAMES as u32),
            tick_frames: tick.min(MAX_SOUND_FRAMES as u32),
        }
    }
}

/// Opens on a helper thread so a sound server that never answers cannot hang the caller; the
/// thread installs its own alsa-lib error buffer (the handler is per thread) and returns the
/// last message alsa-lib gave as part of a one-line error.
fn spawn_open(settings: Settings) -> Receiver<Result<Opened, String>> {
    let (tx, rx) = mpsc::channel();
    let worker_tx = tx.clone();
    let spawned = std::thread::Builder::new().name("alsa-open".into()).spawn(move || {
        let errors = Output::local_error_handler().ok();
        let result = open_pcm(&settings).map_err(|e| {
            let detail = errors.as_ref().map(last_alsa_message).unwrap_or_default();
            format!("cannot open device `{}`{detail} ({e})", settings.device)
        });
        let _ = worker_tx.send(result);
    });
    if let Err(e) = spawned {
        let _ = tx.send(Err(format!("cannot start the open thread: {e}")));
    }
    rx
}

/// The blocking part: open non-blocking, then hardware and software parameters.
fn open_pcm(settings: &Settings) -> alsa::Result<Opened> {
    let pcm = PCM::new(&settings.device, Direction::Playback, true)?;
    let (float, rate, buffer_frames, period_frames) = {
        let hw = HwParams::any(&pcm)?;
        // PulseAudio/PipeWire's ALSA plugins take interleaved access only.
        hw.set_access(Access::RWInterleaved)?;
        hw.set_channels(2)?;
        let float = hw.test_format(Format::float()).is_ok();
        hw.set_format(if float { Format::float() } else { Format::s16() })?;
        // Let ALSA pick a nearby rate; the game is told the real one.
        let rate = hw.set_rate_near(settings.sample_rate, ValueOr::Nearest)?;
        // Room for the target queue, the frame being written and a late frame's catch-up;
        // periods of a quarter frame so the device (or sound server) asks for data often.
        let buffer = i64::from(settings.target_frames + 3 * settings.tick_frames);
        let period = (i64::from(settings.tick_frames) / 4).clamp(64, buffer / 4);
        hw.set_period_size_near(period, ValueOr::Nearest)?;
        let buffer = hw.set_buffer_size_near(buffer)?;
        pcm.hw_params(&hw)?;
        let period = pcm.hw_params_current()?.get_period_size()?;
        (float, rate, buffer, period)
    };
    {
        let sw = pcm.sw_params_current()?;
        // Start as soon as the first write reaches the target; wake-ups per period.
        let start = i64::from(settings.target_frames).min(buffer_frames);
        sw.set_start_threshold(start.max(1))?;
        sw.set_avail_min(period_frames)?;
        pcm.sw_params(&sw)?;
    }
    Ok(Opened { pcm, float, rate, buffer_frames: buffer_frames.clamp(0, i64::from(u32::MAX)) as u32 })
}

impl Stream {
    fn new(opened: Opened) -> alsa::Result<Self> {
        let pcm = NonNull::from(Box::leak(Box::new(opened.pcm)));
        // SAFETY: `pcm` came from `Box::leak` and is freed only in `Drop` (or below on error),
        // after the IO object borrowing it is gone, so `'static` is never observed to dangle.
        let pcm_ref: &'static PCM = unsafe { pcm.as_ref() };
        // The IO object is made once here: `io_f32()`/`io_i16()` query the hardware parameters
        // and allocate on every call, so they stay out of the frame.
        let writer = if opened.float { pcm_ref.io_f32().map(Writer::F32) } else { pcm_ref.io_i16().map(Writer::I16) };
        match writer {
            Ok(writer) => Ok(Self { writer: ManuallyDrop::new(writer), pcm, buffer_frames: opened.buffer_frames }),
            Err(e) => {
                // SAFETY: no IO object was created, so nothing borrows the PCM any more.
                drop(unsafe { Box::from_raw(pcm.as_ptr()) });
                Err(e)
            }
        }
    }

    /// Queues `frames` of silence, which starts the device here rather than in the first
    /// frame: starting (for PulseAudio: uncork and trigger) allocates, the frame must not.
    fn start_with_silence(&self, frames: u32) {
        let frames = (frames as usize).min(MAX_SOUND_FRAMES);
        let _ = match &*self.writer {
            Writer::F32(io) => io.writei(&vec![0.0f32; 2 * frames]),
            Writer::I16(io) => io.writei(&vec![0i16; 2 * frames]),
        };
        if self.pcm().state() == State::Prepared {
            let _ = self.pcm().start();
        }
    }

    fn pcm(&self) -> &PCM {
        // SAFETY: the PCM is alive for as long as `self` (see `Drop`).
        unsafe { self.pcm.as_ref() }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the writer is dropped exactly once, here, before the PCM it borrows; the PCM
        // came from `Box::leak` in `new` and nothing else frees it.
        unsafe {
            ManuallyDrop::drop(&mut self.writer);
            drop(Box::from_raw(self.pcm.as_ptr()));
        }
    }
}

impl Recovery {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            pending: None,
            next_attempt: now,
            backoff: FIRST_RETRY,
            lost_at: None,
            attempts: 0,
            attempt_started: now,
            said_slow: false,
        }
    }

    fn start(&mut self, now: Instant) {
        *self = Self::new();
        self.lost_at = Some(now);
        self.next_attempt = now + FIRST_RETRY;
    }

    fn due(&self, now: Instant) -> bool {
        self.pending.is_none() && now >= self.next_attempt
    }

    /// A finished attempt's result, if one finished since the last call.
    fn poll(&mut self, _now: Instant) -> Option<Result<Opened, String>> {
        let rx = self.pending.as_ref()?;
        match rx.try_recv() {
            Ok(result) => {
                self.pending = None;
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                Some(Err("open thread ended without an answer".into()))
            }
        }
    }

    fn schedule_next(&mut self, now: Instant) {
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(device: &str) -> AudioDesc {
        AudioDesc { sample_rate: 48_000, fps: 60, latency_ms: 10.0, alsa_device: device.into(), wav_out: None }
    }

    #[test]
    fn settings_follow_the_description() {
        let s = Settings::from_desc(&desc("default"));
        assert_eq!((s.target_frames, s.tick_frames), (480, 800));
    }

    #[test]
    fn a_missing_device_is_one_clear_line() {
        let Err(e) = AlsaAudio::open(&desc("handmade_no_such_device")) else {
            panic!("a device that does not exist opened");
        };
        let text = e.to_string();
        assert!(text.contains("handmade_no_such_device"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut r = Recovery::new();
        let now = Instant::now();
        r.start(now);
        for _ in 0..10 {
            r.schedule_next(now);
        }
        assert_eq!(r.backoff, MAX_RETRY);
    }
}
