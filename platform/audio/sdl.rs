//! The SDL2 backend (`--audio sdl`): an `AudioQueue` of interleaved S16, kept `latency` ahead
//! from the queued size, the same sync contract as the ALSA backend. SDL's own audio thread
//! drains the queue into the device; a device that disconnects (its sound server died) is
//! noticed from the device status and reopened with backoff while the game keeps running.
//!
//! Opening talks to the sound server, and SDL's PulseAudio driver waits 30 s for one that
//! accepts the connection but never answers. So every open (the audio subsystem's start and
//! the device) runs on a helper thread (`reopen.rs`): start-up waits at most `OPEN_TIMEOUT`
//! for it, and a reopen is polled once a frame, as the ALSA backend does. Closing, which joins
//! SDL's audio thread (stuck too when the server stopped answering), is bounded the same way.
//!
//! The SDL context comes from `crate::sdl_context` only: the window shares it.

use std::time::{Duration, Instant};

use handmade_api::MAX_SOUND_FRAMES;
use sdl2::audio::{AudioQueue, AudioSpecDesired, AudioStatus as SdlStatus};
use sdl2::{AudioSubsystem, Sdl};

use super::heard::{GapDetector, WriteLatency};
use super::pacing::{Pacing, QueueStats};
use super::reopen::{spawn_open, wait_for_open, Pending, Reopen, OPEN_TIMEOUT};
use super::{interleave_i16, AudioDesc, AudioError, AudioOutput, AudioStatus};

pub struct SdlAudio {
    subsystem: AudioSubsystem,
    queue: Option<AudioQueue<i16>>,
    sample_rate: u32,
    pacing: Pacing,
    /// SDL's device buffer (`spec.samples`): sound that left the queue but is not yet heard.
    device_frames: u32,
    /// One frame while the frame loop expects a new game library (`hold_extra_frame`), else 0.
    extra: u32,
    interleaved: Vec<i16>,
    underruns: u64,
    measured: QueueStats,
    /// Frames queued since the device (re)opened, the priming silence included.
    written: i64,
    /// What this frame's write lands on: the queue plus SDL's device buffer.
    delay: i64,
    heard: GapDetector,
    latency: WriteLatency,
    epoch: Instant,
    /// `Some` while the device is lost and being reopened.
    reopen: Option<Reopen<Handoff<Opened>>>,
}

/// An opened device and the subsystem handle it was opened from.
type Opened = (AudioSubsystem, AudioQueue<i16>);

/// Moves SDL handles to the helper thread that opens a device, and the opened device back.
/// Built and taken apart in this file only, for `Sdl`, `AudioSubsystem` and `Opened`.
struct Handoff<T>(T);

// SAFETY: sdl2 marks its handles `!Send` (a `PhantomData<*mut ()>`) to keep SDL on one thread.
// What they hold is safe to move: their reference counts are atomics (`SDL_COUNT` and one
// `AtomicU32` per subsystem), and the last drop (`SDL_Quit`/`SDL_QuitSubSystem`) cannot happen
// on the helper while the frame thread keeps its own `Sdl` and `AudioSubsystem`. SDL2's audio
// calls made there (`SDL_InitSubSystem(SDL_INIT_AUDIO)`, `SDL_OpenAudioDevice`,
// `SDL_CloseAudioDevice`) may run off the main thread: the drivers run their own threads, and
// the frame thread touches no audio device meanwhile (at start-up it waits; during a reopen it
// has none; a device being closed is no longer its). Each handle is used by one thread at a
// time: moved in, used, and moved back or dropped there.
unsafe impl<T> Send for Handoff<T> {}

impl<T> Handoff<T> {
    /// Takes the whole wrapper apart (a closure naming `.0` would capture only the field, and
    /// the field is not `Send`).
    fn into_inner(self) -> T {
        self.0
    }
}

impl SdlAudio {
    pub fn open(desc: &AudioDesc) -> Result<Self, AudioError> {
        let sdl = crate::sdl_context::sdl().map_err(unavailable)?;
        let rate = desc.sample_rate;
        // SDL converts to whatever the device takes, so the rate asked for is the rate.
        let pacing = Pacing::new(rate, desc.fps, desc.latency_ms);
        let device_frames = device_buffer_frames(pacing.target_frames);
        let pending = open_in_background(Source::Context(Handoff(sdl)), rate, device_frames);
        let (subsystem, queue) =
            wait_for_open(pending, OPEN_TIMEOUT, "the SDL audio device").map_err(unavailable)?.into_inner();
        let device_frames = u32::from(queue.spec().samples);
        let primed = prime(&queue, prime_frames(pacing, device_frames));
        // Info, not debug: which driver SDL picked (SDL_AUDIODRIVER, or its own order when that
        // is unset) decides the path the sound takes to the server.
        log::info!(
            "sdl: driver {} at {rate} Hz, S16, device buffer {device_frames} frames, keeping {} frames queued",
            subsystem.current_audio_driver(),
            pacing.target_frames
        );
        Ok(Self {
            subsystem,
            queue: Some(queue),
            sample_rate: rate,
            pacing,
            device_frames,
            extra: 0,
            interleaved: vec![0; 2 * MAX_SOUND_FRAMES],
            underruns: 0,
            measured: QueueStats::default(),
            written: i64::from(primed),
            delay: 0,
            // SDL's callback takes a device buffer at a time (the longest window), and its
            // thread catches up after a late wake-up (rises must hold 0.75 s).
            heard: GapDetector::new(rate, 16, 45, 1000),
            latency: WriteLatency::default(),
            epoch: Instant::now(),
            reopen: None,
        })
    }

    /// SDL marks a device whose backend failed (e.g. the PulseAudio server went away) as
    /// stopped; a queue we resumed should otherwise always be playing.
    fn check_device(&mut self) {
        let lost = self.queue.as_ref().is_some_and(|q| q.status() == SdlStatus::Stopped);
        if lost {
            log::warn!(
                "sdl: the audio device stopped ({}); the game keeps running silently while it is reopened",
                sdl2::get_error()
            );
            self.queue = None;
            self.heard.restart();
            self.reopen = Some(Reopen::new("sdl: reopening the audio device".into(), Instant::now()));
        }
    }

    /// While the device is gone: collect a finished reopen, or start the next one when due
    /// (on a helper thread: a server that accepts but never answers holds that thread, not
    /// the frame). With the server down an attempt fails at once (connection refused).
    fn poll_reopen(&mut self) {
        let Some(reopen) = self.reopen.as_mut() else {
            return;
        };
        let now = Instant::now();
        let (rate, device_frames) = (self.sample_rate, self.device_frames);
        let subsystem = &self.subsystem;
        let spawn = || open_in_background(Source::Subsystem(Handoff(subsystem.clone())), rate, device_frames);
        let Some(opened) = reopen.poll(now, spawn) else {
            return;
        };
        let (_subsystem, queue) = opened.into_inner();
        self.written = i64::from(prime(&queue, prime_frames(self.pacing, self.device_frames)));
        self.heard.restart();
        log::info!(
            "sdl: audio device reopened after {:.1} s ({} attempts)",
            reopen.lost_for(now).as_secs_f64(),
            reopen.attempts()
        );
        self.queue = Some(queue);
        self.reopen = None;
    }
}

impl AudioOutput for SdlAudio {
    fn name(&self) -> &'static str {
        "sdl"
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn is_paced(&self) -> bool {
        true
    }

    fn frames_wanted(&mut self) -> usize {
        self.check_device();
        let Some(queue) = self.queue.as_ref() else {
            return self.pacing.tick_frames as usize;
        };
        let queued = queue.size() / 4; // 2 channels x 2 bytes
                                       // The queue is primed at open, so an empty one means SDL's thread found nothing and
                                       // played silence.
        self.underruns += u64::from(queued == 0);
        self.delay = i64::from(queued + self.device_frames);
        self.measured.record(self.delay);
        self.heard.measured(self.epoch.elapsed().as_nanos() as u64, self.written - self.delay);
        // SDL's thread takes a whole device buffer per callback and pads with silence what the
        // queue lacks, so the queue must still hold one device buffer when our next frame is
        // a little late: keep the target, one frame and one device buffer queued. The queue
        // grows as needed: no room limit.
        self.pacing.frames_to_write(i64::from(queued), self.device_frames + self.extra, i64::MAX)
    }

    fn hold_extra_frame(&mut self, hold: bool) {
        self.extra = if hold { self.pacing.tick_frames } else { 0 };
    }

    fn write(&mut self, left: &[f32], right: &[f32]) -> Result<usize, AudioError> {
        let Some(queue) = self.queue.as_ref() else {
            self.poll_reopen();
            return Ok(0);
        };
        let n = left.len().min(MAX_SOUND_FRAMES);
        if n == 0 {
            return Ok(0);
        }
        let out = &mut self.interleaved[..2 * n];
        interleave_i16(&left[..n], &right[..n], out);
        queue.queue_audio(out).map_err(|reason| AudioError::Io { backend: "sdl", reason })?;
        self.latency.wrote(self.delay, n);
        self.written += n as i64;
        Ok(n)
    }

    fn status(&self) -> AudioStatus {
        AudioStatus {
            queued_frames: self.measured.last(),
            buffer_frames: self.device_frames,
            underruns: self.underruns,
            mean_queued_frames: self.measured.mean(),
            gaps: self.heard.gaps(),
            gap_frames: self.heard.gap_frames(),
            latency_mean_frames: self.latency.mean_frames(),
            latency_max_frames: self.latency.max_frames(),
        }
    }

    /// Lets what is queued play out (bounded), then closes the device (bounded too).
    fn finish(&mut self) -> Result<(), AudioError> {
        if let Some(queue) = self.queue.take() {
            let frames = u64::from(queue.size() / 4 + self.device_frames);
            let ms = (frames * 1000 / u64::from(self.sample_rate.max(1))).min(500);
            std::thread::sleep(Duration::from_millis(ms));
            if !close_within(queue, CLOSE_TIMEOUT) {
                // The last audio-subsystem or SDL reference to go would quit SDL's audio,
                // which closes (and joins) that same stuck device: keep one of each forever.
                std::mem::forget(self.subsystem.clone());
                std::mem::forget(self.subsystem.sdl());
            }
        }
        Ok(())
    }
}

/// Queues `frames` of silence and starts the device. SDL's queue allocates a packet whenever it
/// grows past its largest size so far; growing it here, once, keeps that out of the frames.
/// SDL's queue stores audio in 8 KiB packets (2048 S16 stereo frames) and keeps used ones in a
/// pool: priming with more than the queue will ever hold, plus a packet for the boundary, means
/// later writes reuse packets instead of allocating.
const SDL_PACKET_FRAMES: u32 = 2048;

fn prime_frames(pacing: Pacing, device_frames: u32) -> u32 {
    pacing.goal(device_frames) + pacing.tick_frames + SDL_PACKET_FRAMES
}

/// Returns the frames it queued.
fn prime(queue: &AudioQueue<i16>, frames: u32) -> u32 {
    let silence = vec![0i16; 2 * frames as usize];
    let queued = queue.queue_audio(&silence).is_ok();
    queue.resume();
    if queued {
        frames
    } else {
        0
    }
}

/// SDL's device buffer: a quarter of the target, so SDL's callback takes small bites and the
/// queue never has to cover a large chunk at once; a power of two (some SDL drivers insist),
/// 256 to 4096 frames.
fn device_buffer_frames(target_frames: u32) -> u32 {
    (target_frames / 4).next_power_of_two().clamp(256, 4096)
}

/// How long closing may take before the platform stops waiting for it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Closes the device on a helper thread: SDL joins its audio thread on close, and with a
/// sound server that stopped answering that thread waits on the server without a timeout.
/// Returns false when it did not finish in time.
fn close_within(queue: AudioQueue<i16>, timeout: Duration) -> bool {
    let queue = Handoff(queue);
    let closed = spawn_open("sdl-close", move || {
        drop(queue.into_inner());
        Ok(())
    });
    match wait_for_open(closed, timeout, "closing the SDL audio device") {
        Ok(()) => true,
        Err(e) => {
            log::warn!("sdl: {e} (the sound server does not answer); not waiting for it");
            false
        }
    }
}

/// Where a helper thread gets its audio subsystem: started from the context (start-up: that
/// start is what may hang), or the running one (a reopen).
enum Source {
    Context(Handoff<Sdl>),
    Subsystem(Handoff<AudioSubsystem>),
}

fn open_in_background(source: Source, rate: u32, device_frames: u32) -> Pending<Handoff<Opened>> {
    spawn_open("sdl-open", move || {
        let subsystem = match source {
            Source::Context(sdl) => sdl.into_inner().audio()?,
            Source::Subsystem(subsystem) => subsystem.into_inner(),
        };
        let queue = open_queue(&subsystem, rate, device_frames)?;
        Ok(Handoff((subsystem, queue)))
    })
}

fn open_queue(subsystem: &AudioSubsystem, rate: u32, device_frames: u32) -> Result<AudioQueue<i16>, String> {
    let desired = AudioSpecDesired { freq: Some(rate as i32), channels: Some(2), samples: Some(device_frames as u16) };
    // No allowed changes: SDL converts to whatever the device takes, so the spec is ours.
    subsystem.open_queue::<i16, _>(None, &desired)
}

fn unavailable(reason: String) -> AudioError {
    AudioError::Unavailable { backend: "sdl", reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_buffer_is_a_power_of_two_in_range() {
        assert_eq!(device_buffer_frames(480), 256);
        assert_eq!(device_buffer_frames(1600), 512);
        assert_eq!(device_buffer_frames(48_000), 4096);
    }
}
