//! Audio output: one small interface, one file per backend, one `open` that picks them.
//!
//! Every backend is told how many frames the game's sound buffer holds each frame and takes
//! structure-of-arrays `f32` frames; converting and interleaving for the device happens inside
//! the backend, into storage it allocated when it was opened.

use std::fmt;
use std::path::PathBuf;

#[cfg(target_os = "linux")]
mod alsa;
mod convert;
pub mod fade;
mod heard;
#[cfg(target_os = "linux")]
mod io_thread;
mod pacing;
mod reopen;
pub mod rt;
#[cfg(target_os = "linux")]
mod sample_ring;
mod sdl;
mod wav;

pub use alsa::AlsaAudio;
pub use convert::{interleave_i16, sanitize};
pub use sdl::SdlAudio;
pub use wav::WavAudio;

/// Which backend to use (`--audio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioChoice {
    /// alsa, then sdl, then the offline wav backend (or none).
    Auto,
    Alsa,
    Sdl,
    /// Offline: no device; exactly one frame's samples per frame, written to `--wav-out`
    /// (without it the sound is discarded, and one line says so).
    Wav,
    /// Offline like `wav`, but the samples are discarded.
    None,
}

/// How the ALSA backend feeds the device (`--alsa-io`).
///
/// `frame` is the default, from the side-by-side measurement (examples/latency_report.rs,
/// README "Sound servers"): at the same `--latency-ms` the I/O thread left fewer gaps through
/// PipeWire, but it keeps one server cycle more queued (5.3 ms), and at the same write-to-play
/// latency (thread at 5 ms against frame at 10 ms, both about 18.5 ms) the two left as many
/// gaps; through PulseAudio at 5 ms the thread's small device buffer left several times more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AlsaIo {
    /// An audio I/O thread tops the device up every period from a lock-free ring the frame
    /// loop fills once a frame; the device's buffer is only the latency (io_thread.rs).
    Thread,
    /// The frame loop writes the device once a frame (its buffer holds the latency and a frame).
    #[default]
    Frame,
}

/// What the platform asks of a backend. Zero values mean "default" where noted.
#[derive(Debug, Clone)]
pub struct AudioDesc {
    pub sample_rate: u32,
    /// Frame rate of the game loop: the offline backend writes `sample_rate / fps` per frame.
    pub fps: u32,
    /// How far ahead of the device's play position to keep the queue.
    pub latency_ms: f32,
    pub alsa_device: String,
    pub alsa_io: AlsaIo,
    pub wav_out: Option<PathBuf>,
}

/// Where the device is: filled by `status()` after each write.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AudioStatus {
    /// Frames queued in the device (its delay), as last measured.
    pub queued_frames: u32,
    /// The device's buffer size in frames (0 offline).
    pub buffer_frames: u32,
    /// What the device itself reported as underruns (ALSA's EPIPE, an empty SDL queue, an
    /// empty delay while running). Through a sound server most heard gaps never show here.
    pub underruns: u64,
    /// The device's delay averaged over every frame's measurement (at write time).
    pub mean_queued_frames: f32,
    /// Gaps a listener hears, seen as the play position falling behind the clock
    /// (`heard::GapDetector`), and the frames of silence they add up to.
    pub gaps: u64,
    pub gap_frames: u64,
    /// Time from a sample's write to its play, in frames: the mean over every sample written
    /// and the largest. Counted from the delay the device reports; what a sound server holds
    /// beyond that figure is not in it (see `heard.rs`).
    pub latency_mean_frames: f32,
    pub latency_max_frames: u32,
}

#[derive(Debug)]
pub enum AudioError {
    /// The backend cannot be opened here (no device, no server, no library).
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    Io {
        backend: &'static str,
        reason: String,
    },
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::Unavailable { backend, reason } => {
                write!(f, "{backend} audio unavailable: {reason}")
            }
            AudioError::Io { backend, reason } => write!(f, "{backend} audio failed: {reason}"),
        }
    }
}

impl std::error::Error for AudioError {}

/// A sound output. Called once per frame from the frame loop:
/// `frames_wanted` -> the game fills that many frames -> `write`.
/// Implementations must not allocate, lock or make system calls in these two calls other than
/// the device write and its status query.
pub trait AudioOutput {
    fn name(&self) -> &'static str;
    fn sample_rate(&self) -> u32;
    /// True when the device consumes sound in real time (the loop then paces itself).
    fn is_paced(&self) -> bool;
    /// How many frames to write now to stay `latency` ahead (at most `MAX_SOUND_FRAMES`).
    fn frames_wanted(&mut self) -> usize;
    /// Whether to keep one frame more queued than the target from the next `frames_wanted`
    /// on: the frame loop asks for it while a new game library may come in (a build or a
    /// check under way), because that library's first frame can reach the sound write later
    /// than the frame before did. A device that does not pace by its queue ignores it.
    fn hold_extra_frame(&mut self, _hold: bool) {}
    /// Writes equally long channels; returns how many frames the device took.
    fn write(&mut self, left: &[f32], right: &[f32]) -> Result<usize, AudioError>;
    fn status(&self) -> AudioStatus;
    /// Flushes and closes (the WAV header is completed here). Also done on drop, silently.
    fn finish(&mut self) -> Result<(), AudioError>;
}

/// Opens the chosen backend. `Auto` tries alsa, then sdl, then falls back to offline output.
/// Either way one line says what was chosen and, under `Auto`, why the others were not.
pub fn open(choice: AudioChoice, desc: &AudioDesc) -> Result<Box<dyn AudioOutput>, AudioError> {
    let output = match choice {
        AudioChoice::Wav => {
            if desc.wav_out.is_none() {
                log::warn!("audio: --audio wav without --wav-out PATH: the sound is discarded (as with --audio none)");
            }
            Box::new(WavAudio::open(desc, desc.wav_out.clone())?)
        }
        AudioChoice::None => Box::new(WavAudio::open(desc, None)?),
        AudioChoice::Alsa | AudioChoice::Sdl => open_device(choice, desc)?,
        AudioChoice::Auto => return open_auto(desc),
    };
    log::info!("audio: {} ({})", output.name(), describe(desc, &*output));
    Ok(output)
}

fn open_auto(desc: &AudioDesc) -> Result<Box<dyn AudioOutput>, AudioError> {
    let alsa_error = match open_device(AudioChoice::Alsa, desc) {
        Ok(output) => {
            log::info!("audio: auto chose alsa ({})", describe(desc, &*output));
            return Ok(output);
        }
        Err(e) => e,
    };
    let sdl_error = match open_device(AudioChoice::Sdl, desc) {
        Ok(output) => {
            log::info!("audio: auto chose sdl ({}); not alsa: {alsa_error}", describe(desc, &*output));
            return Ok(output);
        }
        Err(e) => e,
    };
    let output: Box<dyn AudioOutput> = Box::new(WavAudio::open(desc, desc.wav_out.clone())?);
    log::info!(
        "audio: auto fell back to offline output ({}); not alsa: {alsa_error}; not sdl: {sdl_error}",
        output.name()
    );
    Ok(output)
}

/// The device backends; `cfg` lives here and on the `mod` lines only.
fn open_device(choice: AudioChoice, desc: &AudioDesc) -> Result<Box<dyn AudioOutput>, AudioError> {
    match choice {
        #[cfg(target_os = "linux")]
        AudioChoice::Alsa => Ok(Box::new(AlsaAudio::open(desc)?)),
        AudioChoice::Sdl => Ok(Box::new(SdlAudio::open(desc)?)),
        other => Err(AudioError::Unavailable {
            backend: if other == AudioChoice::Alsa { "alsa" } else { "device" },
            reason: "not built for this platform".into(),
        }),
    }
}

fn describe(desc: &AudioDesc, output: &dyn AudioOutput) -> String {
    if output.is_paced() {
        format!("{} Hz, keeping {:.1} ms queued", output.sample_rate(), desc.latency_ms)
    } else {
        format!("{} Hz, offline, unpaced", output.sample_rate())
    }
}
