//! The ALSA backend (`--audio alsa`): a non-blocking playback PCM taking interleaved F32 (or S16
//! where the device does not take float), kept `latency` ahead of the play position from the
//! device's own delay figure, Handmade Hero style. Underruns and suspends are recovered inside
//! the frame without blocking; a device that goes away (a sound server that dies) is reopened
//! on a helper thread with backoff while the game keeps running silently.
//!
//! Two ways to feed the device (`--alsa-io`, `AlsaIo`): the frame loop writes it once a frame
//! (`frame`), or an audio I/O thread tops it up every period from a ring the frame loop fills
//! once a frame (`thread`, io_thread.rs). The pacing, the gap and latency figures and the
//! reopen are the same for both, counted on the queue in the ring and the device together.
//!
//! Writes go through `PCM::io_bytes()`, taken per write like cpal does: it is a flag check on
//! the PCM, where `io_f32()`/`io_i16()` query the hardware parameters (a malloc) on every call.
//! The samples are interleaved straight into native-endian bytes, so no pointer cast is needed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, State, PCM};
use alsa::{Direction, Output, ValueOr};
use handmade_api::MAX_SOUND_FRAMES;

use super::convert::{interleave_f32_bytes, interleave_i16_bytes};
use super::heard::{GapDetector, WriteLatency};
use super::io_thread::{IoLink, IoState};
use super::pacing::{FrameClock, NoDelayDetector, Pacing, QueueStats};
use super::reopen::{spawn_open, wait_for_open, Pending, Reopen, OPEN_TIMEOUT};
use super::{AlsaIo, AudioDesc, AudioError, AudioOutput, AudioStatus};

/// The smallest heard gap counted (`heard.rs`), in µs: the pulse plugin's delay figure moves
/// smoothly, and PulseAudio's null sink leaves gaps well under a millisecond (those under
/// 0.25 ms, 12 frames, are missed: measured, a third of them at 2 ms).
const GAP_US: u32 = 250;

pub struct AlsaAudio {
    settings: Settings,
    /// At the rate the device granted (`settings.sample_rate` once opened).
    pacing: Pacing,
    /// `None` while the device is lost and `reopen` is bringing it back, and always in thread
    /// mode (the I/O thread owns it).
    device: Option<Device>,
    /// Thread mode: the ring the frame fills and the thread's figures.
    io: Option<IoLink>,
    /// Thread mode: a reopened device went to the thread, which has not started it yet.
    handed_over: bool,
    /// Thread mode: frames the ring keeps beyond the target and the frame, so the thread can
    /// still top the device up when the next frame's write comes: one sound-server cycle
    /// (`SERVER_CYCLE_FRAMES_48K`). 0 in frame mode.
    server_cycle: u32,
    /// One frame while the frame loop expects a new game library (`hold_extra_frame`), else 0.
    extra: u32,
    /// The device's buffer as opened.
    buffer_frames: u32,
    /// The device takes F32 (else S16), as opened (a reopen must grant the same to be used).
    float: bool,
    reopen: Option<Reopen<Device>>,
    /// Interleaved samples for the device, sized for `MAX_SOUND_FRAMES` of the widest format.
    bytes: Vec<u8>,
    /// Set while the device is suspended (ESTRPIPE): resume is retried once per frame.
    suspended: bool,
    underruns: u64,
    /// The last delay query or write answered EPIPE and the stream was prepared, with nothing
    /// taken since: a second EPIPE now means the device is gone (`recover`).
    epipe_pending: bool,
    /// Underruns counted in the current run of empty queues: taken back if the run turns out
    /// to be a device that reports no delay rather than one that ran dry.
    dry_streak: u64,
    queue: QueueStats,
    /// Frames written to the device since it (re)started, its starting silence included:
    /// minus its delay, that is how far it has played.
    written: i64,
    /// The delay measured for this frame's write.
    delay: i64,
    heard: GapDetector,
    /// Thread mode: the I/O thread's EPIPE count already passed to `heard`.
    epipes_seen: u64,
    latency: WriteLatency,
    /// The gap detector's clock.
    epoch: Instant,
    no_delay: NoDelayDetector,
    /// Set once the device showed it reports no delay (alsa-lib's `null`): its queue cannot
    /// pace anything, so one frame's sound is written per frame and the loop's clock paces.
    clock: Option<FrameClock>,
    /// Keeps alsa-lib's error messages (it prints them to stderr by default) in a buffer on
    /// the frame thread; we quote the last one in our own one-line errors.
    errors: Rc<RefCell<Output>>,
}

/// What a (re)open needs; plain data so a helper thread can take a copy.
#[derive(Debug, Clone)]
struct Settings {
    device: String,
    /// Asked for at start-up; the granted one afterwards, so a reopen asks for that.
    sample_rate: u32,
    fps: u32,
    latency_ms: f32,
    io: AlsaIo,
}

/// A configured PCM; `PCM` is `Send`, so it is opened on a helper thread and handed over.
pub(super) struct Device {
    pub(super) pcm: PCM,
    pub(super) float: bool,
    /// The rate the device granted, which `set_rate_near` may have moved from the one asked for.
    pub(super) rate: u32,
    /// Target and per-frame amount in frames at `rate`.
    pub(super) pacing: Pacing,
    buffer_frames: u32,
    pub(super) period_frames: u32,
}

impl AlsaAudio {
    pub fn open(desc: &AudioDesc) -> Result<Self, AudioError> {
        let errors = Output::local_error_handler().map_err(|e| unavailable(e.to_string()))?;
        let settings = Settings::from_desc(desc);
        let what = format!("device `{}`", settings.device);
        let device = wait_for_open(open_in_background(&settings), OPEN_TIMEOUT, &what).map_err(unavailable)?;
        let primed = device.start_with_silence();
        let rate = device.rate;
        if device.rate != settings.sample_rate {
            log::info!(
                "alsa: `{}` runs at {} Hz, not the {} Hz asked for; the game is told {} Hz",
                settings.device,
                device.rate,
                settings.sample_rate,
                device.rate
            );
        }
        log::debug!(
            "alsa: `{}` at {} Hz, {}, buffer {} frames, period {}, keeping {} frames queued, fed {}",
            settings.device,
            device.rate,
            if device.float { "interleaved F32" } else { "interleaved S16" },
            device.buffer_frames,
            device.period_frames,
            device.pacing.target_frames,
            if settings.io == AlsaIo::Thread { "by the audio I/O thread" } else { "once a frame" },
        );
        let (pacing, buffer_frames, float) = (device.pacing, device.buffer_frames, device.float);
        let epoch = Instant::now();
        let (device, io) = match settings.io {
            AlsaIo::Frame => (Some(device), None),
            AlsaIo::Thread => {
                let io = IoLink::start(&settings.device, device, primed, epoch)
                    .map_err(|e| unavailable(format!("cannot start the audio I/O thread: {e}")))?;
                (None, Some(io))
            }
        };
        Ok(Self {
            settings: Settings { sample_rate: rate, ..settings },
            pacing,
            device,
            io,
            handed_over: false,
            server_cycle: if settings.io == AlsaIo::Thread { server_cycle_frames(rate) } else { 0 },
            extra: 0,
            buffer_frames,
            float,
            reopen: None,
            bytes: vec![0; 2 * MAX_SOUND_FRAMES * std::mem::size_of::<f32>()],
            suspended: false,
            underruns: 0,
            epipe_pending: false,
            dry_streak: 0,
            queue: QueueStats::default(),
            written: primed as i64,
            delay: 0,
            // The pulse plugin's delay moves smoothly: a short window.
            heard: GapDetector::new(rate, 4, 0, GAP_US),
            epipes_seen: 0,
            latency: WriteLatency::default(),
            epoch,
            // The silence that started the device counts as a write.
            no_delay: NoDelayDetector::after_a_write(),
            clock: None,
            errors,
        })
    }

    /// Handles an error from the delay query or the write: underruns and suspends are
    /// recovered here and now; anything else means the device is gone.
    fn recover(&mut self, error: alsa::Error) {
        let Some(device) = self.device.as_ref() else {
            return;
        };
        let recovered = match error.errno() {
            // PipeWire's ALSA plugin answers EPIPE, as for an underrun, to everything once its
            // connection to the server broke, and `prepare` still succeeds: an underrun again
            // straight after a prepare, with nothing taken between, is a lost device.
            libc::EPIPE if self.epipe_pending => false,
            libc::EPIPE => {
                self.underruns += 1;
                self.heard.device_gaps(1);
                self.epipe_pending = true;
                // Not `snd_pcm_recover`: with `silent = 0` it prints, and for ESTRPIPE it
                // sleeps a second per attempt. `prepare` is immediate.
                device.pcm.prepare().is_ok()
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
        let Some(device) = self.device.as_ref() else {
            return;
        };
        match device.pcm.resume() {
            Ok(()) => self.suspended = false,
            Err(e) if e.errno() == libc::EAGAIN => {}
            // Devices that cannot resume in place start over from prepared.
            Err(_) => self.suspended = device.pcm.prepare().is_err(),
        }
    }

    fn lose_device(&mut self, error: &alsa::Error) {
        let detail = last_alsa_message(&self.errors);
        log::warn!(
            "alsa: lost `{}` ({error}{detail}); the game keeps running silently while it is reopened",
            self.settings.device
        );
        self.device = None;
        self.suspended = false;
        self.epipe_pending = false;
        self.heard.restart();
        let what = format!("alsa: reopening `{}`", self.settings.device);
        self.reopen = Some(Reopen::new(what, Instant::now()));
    }

    /// The device took every write and still reports an empty queue: it consumes sound as fast
    /// as it gets it. Said once; the empty queues were not underruns.
    fn pace_by_clock(&mut self) -> usize {
        // One line, once: the logger allocates for it (a fault path, like losing the device).
        log::warn!(
            "alsa: `{}` reports no delay (it takes sound as fast as it is written); pacing by the frame clock instead",
            self.settings.device
        );
        self.underruns = self.underruns.saturating_sub(self.dry_streak);
        self.dry_streak = 0;
        let clock = self.clock.insert(FrameClock::new(self.settings.sample_rate, self.settings.fps));
        clock.tick()
    }

    /// While the device is gone: collect a finished reopen, or start the next one when due.
    fn poll_reopen(&mut self) {
        let Some(reopen) = self.reopen.as_mut() else {
            return;
        };
        let now = Instant::now();
        let Some(device) = reopen.poll(now, || open_in_background(&self.settings)) else {
            return;
        };
        // The game renders at the rate it was given at start-up: a device that comes back
        // at another rate would play it at the wrong pitch, so that is another failure.
        if device.rate != self.settings.sample_rate || device.float != self.float {
            log::warn!(
                "alsa: `{}` came back at {} Hz {}, not {} Hz {}; trying again",
                self.settings.device,
                device.rate,
                if device.float { "F32" } else { "S16" },
                self.settings.sample_rate,
                if self.float { "F32" } else { "S16" },
            );
            reopen.reject(now);
            return;
        }
        let primed = device.start_with_silence();
        self.heard.restart();
        log::info!(
            "alsa: `{}` reopened after {:.1} s ({} attempts)",
            self.settings.device,
            reopen.lost_for(now).as_secs_f64(),
            reopen.attempts()
        );
        self.reopen = None;
        match self.io.as_mut() {
            Some(io) => {
                io.hand_over(device, primed);
                self.handed_over = true;
            }
            None => {
                self.written = primed as i64;
                self.device = Some(device);
            }
        }
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
        if self.io.is_some() {
            return self.frames_wanted_from_ring();
        }
        let pacing = self.pacing;
        let tick = pacing.tick_frames as usize;
        if self.suspended {
            self.try_resume();
        }
        let Some(device) = self.device.as_ref() else {
            return tick; // no device: keep the game's sound clock running at the frame rate
        };
        if self.suspended {
            return tick;
        }
        if let Some(clock) = self.clock.as_mut() {
            return clock.tick();
        }
        match device.pcm.avail_delay() {
            Ok((avail, delay)) => {
                log::trace!("avail {avail} delay {delay} state {:?}", device.pcm.state());
                self.epipe_pending = false;
                // PulseAudio's ALSA plugin only reports EPIPE with `handle_underrun`; a running
                // stream whose queue is empty has underrun all the same.
                let ran_dry = delay <= 0 && device.pcm.state() == State::Running;
                self.underruns += u64::from(ran_dry);
                self.dry_streak = if delay > 0 { 0 } else { self.dry_streak + u64::from(ran_dry) };
                self.queue.record(delay);
                self.delay = delay;
                if self.no_delay.measured(delay) {
                    return self.pace_by_clock();
                }
                self.heard.measured(self.epoch.elapsed().as_nanos() as u64, self.written - delay.max(0));
                pacing.frames_to_write(delay, self.extra, avail)
            }
            Err(e) => {
                self.recover(e);
                self.delay = 0;
                // After an underrun the queue is empty: refill to the goal.
                pacing.frames_to_write(0, self.extra, i64::MAX)
            }
        }
    }

    fn hold_extra_frame(&mut self, hold: bool) {
        self.extra = if hold { self.pacing.tick_frames } else { 0 };
    }

    fn write(&mut self, left: &[f32], right: &[f32]) -> Result<usize, AudioError> {
        if self.io.is_some() {
            return Ok(self.write_to_ring(left, right));
        }
        let Some(device) = self.device.as_ref() else {
            self.poll_reopen();
            return Ok(0);
        };
        if self.suspended || left.is_empty() {
            return Ok(0);
        }
        let out = interleave(&mut self.bytes, device.float, left, right);
        let result = write_all(&device.pcm, out);
        let written = match result {
            Ok(written) => written,
            Err((written, _)) => written,
        };
        self.no_delay.wrote(written);
        self.latency.wrote(self.delay, written);
        self.written += written as i64;
        self.epipe_pending &= written == 0;
        match result {
            // `write_all` prepared the stream and its retry was taken: only count the
            // underrun (preparing again would drop what the retry queued).
            Err((taken, e)) if e.errno() == libc::EPIPE && taken > 0 => {
                self.underruns += 1;
                self.heard.device_gaps(1);
            }
            Err((_, e)) => self.recover(e),
            Ok(_) => {}
        }
        Ok(written)
    }

    fn status(&self) -> AudioStatus {
        AudioStatus {
            queued_frames: self.queue.last(),
            buffer_frames: if self.device.is_some() || self.io.is_some() { self.buffer_frames } else { 0 },
            underruns: self.underruns + self.io.as_ref().map_or(0, IoLink::underruns),
            mean_queued_frames: self.queue.mean(),
            gaps: self.heard.gaps(),
            gap_frames: self.heard.gap_frames(),
            latency_mean_frames: self.latency.mean_frames(),
            latency_max_frames: self.latency.max_frames(),
        }
    }

    /// Lets what is queued play out (bounded), then closes the device.
    fn finish(&mut self) -> Result<(), AudioError> {
        if let Some(mut io) = self.io.take() {
            io.finish();
        }
        if let Some(device) = self.device.take() {
            let queued = device.pcm.delay().unwrap_or(0).max(0) as u64;
            let ms = (queued * 1000 / u64::from(self.settings.sample_rate.max(1))).min(500);
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    }
}

/// Writes interleaved frames (as bytes); after an underrun (EPIPE) the stream is prepared and
/// the write retried once, so the frame's sound is not lost. Returns frames taken, or how many
/// were taken before an error it could not handle.
pub(super) fn write_all(pcm: &PCM, bytes: &[u8]) -> Result<usize, (usize, alsa::Error)> {
    let io = pcm.io_bytes();
    match io.writei(bytes) {
        Ok(frames) => Ok(frames),
        Err(e) if e.errno() == libc::EPIPE && pcm.prepare().is_ok() => match io.writei(bytes) {
            Ok(frames) => Err((frames, e)),
            Err(again) => Err((0, again)),
        },
        Err(e) => Err((0, e)),
    }
}

fn unavailable(reason: String) -> AudioError {
    AudioError::Unavailable { backend: "alsa", reason }
}

/// The last line alsa-lib reported on this thread, as `: <text>`, or nothing.
pub(super) fn last_alsa_message(errors: &Rc<RefCell<Output>>) -> String {
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
        Self {
            device: desc.alsa_device.clone(),
            sample_rate: desc.sample_rate,
            fps: desc.fps,
            latency_ms: desc.latency_ms,
            io: desc.alsa_io,
        }
    }
}

/// Opens on a helper thread so a sound server that never answers cannot hang the caller; the
/// thread installs its own alsa-lib error buffer (the handler is per thread) and returns the
/// last message alsa-lib gave as part of a one-line error.
fn open_in_background(settings: &Settings) -> Pending<Device> {
    let settings = settings.clone();
    spawn_open("alsa-open", move || {
        let errors = Output::local_error_handler().ok();
        open_pcm(&settings).map_err(|e| {
            let detail = errors.as_ref().map(last_alsa_message).unwrap_or_default();
            format!("cannot open device `{}`{detail} ({e})", settings.device)
        })
    })
}

/// The blocking part: open non-blocking, then hardware and software parameters.
fn open_pcm(settings: &Settings) -> alsa::Result<Device> {
    let pcm = PCM::new(&settings.device, Direction::Playback, true)?;
    let (float, rate, pacing, buffer_frames, period_frames, wake) = {
        let hw = HwParams::any(&pcm)?;
        // PulseAudio/PipeWire's ALSA plugins take interleaved access only.
        hw.set_access(Access::RWInterleaved)?;
        hw.set_channels(2)?;
        let float = hw.test_format(Format::float()).is_ok();
        hw.set_format(if float { Format::float() } else { Format::s16() })?;
        // Let ALSA pick a nearby rate; the game is told the real one, and the queue is
        // measured in its frames: every amount below is computed at the granted rate.
        let rate = hw.set_rate_near(settings.sample_rate, ValueOr::Nearest)?;
        let pacing = Pacing::new(rate, settings.fps, settings.latency_ms);
        let (buffer, period, wake) = device_buffer(settings.io, pacing);
        hw.set_period_size_near(period, ValueOr::Nearest)?;
        let buffer = hw.set_buffer_size_near(buffer)?;
        pcm.hw_params(&hw)?;
        let period = pcm.hw_params_current()?.get_period_size()?;
        (float, rate, pacing, buffer, period, wake)
    };
    {
        let sw = pcm.sw_params_current()?;
        // Start as soon as the first write reaches the target; wake-ups per `wake` frames
        // free, never fewer than a period.
        let start = i64::from(pacing.target_frames).min(buffer_frames);
        sw.set_start_threshold(start.max(1))?;
        sw.set_avail_min(wake.max(period_frames).min(buffer_frames))?;
        pcm.sw_params(&sw)?;
    }
    let to_u32 = |frames: i64| frames.clamp(0, i64::from(u32::MAX)) as u32;
    Ok(Device { pcm, float, rate, pacing, buffer_frames: to_u32(buffer_frames), period_frames: to_u32(period_frames) })
}

/// One cycle of the sound server at 48 kHz: PipeWire's pulse server runs its graph at no
/// less than a 256-frame quantum for pulse clients (`pulse.min.quantum`, 5.3 ms), whatever the
/// client asks; every gap it leaves is that long (issue 12). PulseAudio's null sink runs finer.
const SERVER_CYCLE_FRAMES_48K: u32 = 256;

/// `SERVER_CYCLE_FRAMES_48K` at `rate`.
fn server_cycle_frames(rate: u32) -> u32 {
    (u64::from(SERVER_CYCLE_FRAMES_48K) * u64::from(rate) / 48_000) as u32
}

/// Buffer, period and wake-up size (`avail_min`) asked of the device, in frames.
///
/// The two plugins a desktop's `default` goes through read different ones:
/// - the pulse plugin passes the buffer and the period on as `tlength` and `minreq`, and
///   PulseAudio (it connects with early requests) runs its sink in blocks of `minreq`: at each
///   wake-up the stream must hold a whole block more than has played, or the block is partly
///   silent. At a period of a quarter frame (4.2 ms) a 5 ms target left 0.8 ms for the error of
///   the plugin's interpolated delay, and the server logged an underrun at every gap the
///   recording had (issue 12);
/// - PipeWire's plugin takes `avail_min` as its node latency, which sets the graph's quantum;
///   a 64-frame quantum was no better than 128 (21 and 6 gaps against 6 in 60 s runs under
///   load) and wakes the whole graph twice as often.
///
/// So in frame mode the period follows the target (a quarter of it), while the wake-up size
/// stays at a quarter frame.
fn device_buffer(io: AlsaIo, pacing: Pacing) -> (i64, i64, i64) {
    let (target, tick) = (i64::from(pacing.target_frames), i64::from(pacing.tick_frames));
    match io {
        // Room for the target queue, the frame being written and a late frame's catch-up.
        AlsaIo::Frame => {
            let buffer = target + 3 * tick;
            let wake = (tick / 4).clamp(64, buffer / 4);
            (buffer, (target / 4).clamp(32, wake), wake)
        }
        // The thread tops the device up every period: its buffer is the latency alone (the
        // frame's sound waits in the ring), in periods of a quarter of it, as cpal asks.
        AlsaIo::Thread => {
            let period = (target / 4).max(32);
            (target.max(2 * period), period, period)
        }
    }
}

/// Interleaves a frame's sound into `bytes` in the device's format; returns the bytes used.
fn interleave<'a>(bytes: &'a mut [u8], float: bool, left: &[f32], right: &[f32]) -> &'a [u8] {
    let n = left.len().min(right.len()).min(MAX_SOUND_FRAMES);
    let (left, right) = (&left[..n], &right[..n]);
    if float {
        let out = &mut bytes[..8 * n];
        interleave_f32_bytes(left, right, out);
        out
    } else {
        let out = &mut bytes[..4 * n];
        interleave_i16_bytes(left, right, out);
        out
    }
}

/// Thread mode (`--alsa-io thread`): the frame side of io_thread.rs.
impl AlsaAudio {
    /// What brings the ring and the device together back to the target, the frame about to
    /// pass and one server cycle, from the play position the thread last published.
    fn frames_wanted_from_ring(&mut self) -> usize {
        let tick = self.pacing.tick_frames as usize;
        if !self.ring_running() {
            return tick; // no device: keep the game's sound clock running at the frame rate
        }
        if let Some(clock) = self.clock.as_mut() {
            return clock.tick();
        }
        let Some(io) = self.io.as_ref() else {
            return tick;
        };
        let snapshot = io.snapshot();
        let (queued, room) = (io.queued(&snapshot), io.room());
        self.queue.record(queued);
        self.delay = queued;
        if self.no_delay.measured(snapshot.delay) {
            return self.pace_by_clock();
        }
        let epipes = io.epipes();
        self.heard.device_gaps(epipes.saturating_sub(self.epipes_seen));
        self.epipes_seen = epipes;
        self.heard.measured(snapshot.at_ns, snapshot.played);
        self.pacing.frames_to_write(queued, self.server_cycle + self.extra, room as i64)
    }

    fn write_to_ring(&mut self, left: &[f32], right: &[f32]) -> usize {
        if left.is_empty() || !self.ring_running() {
            return 0;
        }
        let Some(io) = self.io.as_mut() else {
            return 0;
        };
        let pushed = io.push(interleave(&mut self.bytes, self.float, left, right));
        self.no_delay.wrote(pushed);
        self.latency.wrote(self.delay, pushed);
        pushed
    }

    /// Whether the thread is feeding a device the frame may push to. Notices a device the
    /// thread lost (it said so in one line), reopens it as the once-a-frame mode does, and
    /// hands the reopened device over.
    fn ring_running(&mut self) -> bool {
        let Some(state) = self.io.as_ref().map(IoLink::state) else {
            return false;
        };
        if self.reopen.is_some() {
            self.poll_reopen();
            return false;
        }
        match state {
            IoState::Running => {
                self.handed_over = false;
                true
            }
            IoState::Suspended => false,
            IoState::Lost if self.handed_over => false,
            IoState::Lost => {
                self.heard.restart();
                let what = format!("alsa: reopening `{}`", self.settings.device);
                self.reopen = Some(Reopen::new(what, Instant::now()));
                false
            }
        }
    }
}

impl Device {
    /// Queues the target's worth of silence, which starts the device here rather than in the
    /// first frame: starting (for PulseAudio: uncork and trigger) allocates, the frame must not.
    /// All-zero bytes are silence in both F32 and S16.
    /// Returns the frames it queued.
    fn start_with_silence(&self) -> usize {
        let frames = (self.pacing.target_frames as usize).min(MAX_SOUND_FRAMES);
        let frame_bytes = if self.float { 8 } else { 4 };
        let queued = self.pcm.io_bytes().writei(&vec![0u8; frames * frame_bytes]).unwrap_or(0);
        if self.pcm.state() == State::Prepared {
            let _ = self.pcm.start();
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once a frame the period follows the target (PulseAudio's sink block) and the wake-up
    /// size stays a quarter frame (PipeWire's quantum); the I/O thread uses a quarter of the
    /// target for both.
    #[test]
    fn frame_mode_period_follows_the_target_and_the_wake_up_size_does_not() {
        let at = |ms: f32, io| device_buffer(io, Pacing::new(48_000, 60, ms));
        assert_eq!(at(5.0, AlsaIo::Frame), (240 + 3 * 800, 60, 200));
        assert_eq!(at(10.0, AlsaIo::Frame), (480 + 3 * 800, 120, 200));
        assert_eq!(at(20.0, AlsaIo::Frame), (960 + 3 * 800, 200, 200), "from a frame's quarter up: as before");
        assert_eq!(at(1.0, AlsaIo::Frame).1, 32, "never below 32 frames");
        assert_eq!(at(5.0, AlsaIo::Thread), (240, 60, 60));
    }

    fn desc(device: &str) -> AudioDesc {
        AudioDesc {
            sample_rate: 48_000,
            fps: 60,
            latency_ms: 10.0,
            alsa_device: device.into(),
            alsa_io: AlsaIo::Frame,
            wav_out: None,
        }
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

    /// alsa-lib's `null` device takes anything at once: a real PCM that needs no server.
    #[test]
    fn writes_reach_the_device() {
        let mut alsa = AlsaAudio::open(&desc("null")).expect("the null device opens");
        assert_eq!((alsa.sample_rate(), alsa.pacing.target_frames, alsa.pacing.tick_frames), (48_000, 480, 800));
        let n = alsa.frames_wanted();
        assert!(n > 0);
        assert_eq!(
            alsa.write(&vec![0.25; n], &vec![-0.25; n]).unwrap(),
            n,
            "every frame taken, none lost to the byte path"
        );
    }

    /// Issue 16.13b: `null` reports a delay of 0 whatever is written. Written to as if it were
    /// empty, it would take target + frame each frame (3x the sound clock) and count an
    /// underrun each frame; once noticed it takes one frame's sound per frame, no underruns.
    #[test]
    fn a_device_without_delay_is_paced_by_the_frame_clock() {
        let mut alsa = AlsaAudio::open(&desc("null")).expect("the null device opens");
        let mut wanted = Vec::new();
        let noticed_at = NoDelayDetector::FRAMES as usize - 1;
        for _ in 0..noticed_at + 20 {
            let n = alsa.frames_wanted();
            wanted.push(n);
            assert_eq!(alsa.write(&vec![0.0; n], &vec![0.0; n]).unwrap(), n);
        }
        assert!(alsa.clock.is_some(), "noticed: {wanted:?}");
        assert!(wanted[..noticed_at].iter().all(|&n| n == 480 + 800), "{wanted:?}");
        assert!(wanted[noticed_at..].iter().all(|&n| n == 800), "{wanted:?}");
        assert_eq!(alsa.status().underruns, 0, "an empty queue there is not an underrun");
    }

    fn thread_desc(device: &str) -> AudioDesc {
        AudioDesc { alsa_io: AlsaIo::Thread, ..desc(device) }
    }

    /// Thread mode: what the frame writes goes into the ring, and the I/O thread hands it to
    /// the device (the `null` device takes everything at once, so the ring empties).
    #[test]
    fn the_io_thread_moves_the_ring_to_the_device() {
        let mut alsa = AlsaAudio::open(&thread_desc("null")).expect("the null device opens");
        assert!(alsa.device.is_none(), "the thread owns the device");
        let n = alsa.frames_wanted();
        assert!(n > 0);
        assert_eq!(alsa.write(&vec![0.25; n], &vec![-0.25; n]).unwrap(), n, "the ring took it all");
        let io = alsa.io.as_ref().unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while io.room() < (480 + 3 * 800) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(io.room(), 480 + 3 * 800, "the thread emptied the ring into the device");
        let started = Instant::now();
        alsa.finish().unwrap();
        assert!(alsa.io.is_none() && started.elapsed() < Duration::from_millis(800));
    }

    /// Thread mode keeps issue 16.13b's answer: the `null` device's queue never holds
    /// anything, the frame clock paces it, and its empty queue is no underrun.
    #[test]
    fn a_device_without_delay_is_paced_by_the_frame_clock_through_the_thread() {
        let mut alsa = AlsaAudio::open(&thread_desc("null")).expect("the null device opens");
        let mut wanted = Vec::new();
        for _ in 0..NoDelayDetector::FRAMES as usize + 20 {
            let n = alsa.frames_wanted();
            wanted.push(n);
            assert_eq!(alsa.write(&vec![0.0; n], &vec![0.0; n]).unwrap(), n, "{wanted:?}");
            // A frame's time, shortened: the thread empties the ring within a period.
            std::thread::sleep(Duration::from_millis(6));
        }
        assert!(alsa.clock.is_some(), "noticed: {wanted:?}");
        assert!(wanted[wanted.len() - 10..].iter().all(|&n| n == 800), "{wanted:?}");
        assert_eq!(alsa.status().underruns, 0, "an empty queue there is not an underrun");
    }
}
