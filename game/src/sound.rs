//! The game's sound: a tone whose pitch follows the player's height and whose constant-power
//! pan follows its x, plus the `data/loop.wav` loop, mixed through a fixed voice pool and a
//! delay-line echo. All of it lives in permanent storage, so the waveform continues
//! sample-exactly across reloads.
//!
//! With no input the output is exactly the plain 256 Hz sine at amplitude 0.25 on both
//! channels (other tests compare it byte for byte): every gain is then exactly 1.0, every
//! smoother sits on its target, and the mixer and echo only ever add exact zeros.

use core::f64::consts::{FRAC_PI_2, SQRT_2, TAU};

use handmade_api::rt::{DelayLine, Pool, PoolHandle};
use handmade_api::{ArenaError, GameSample, GameSoundOutputBuffer, MemoryArena, StateLayout, MAX_SOUND_FRAMES};

use crate::controls::{Controls, Waveform};

#[cfg(not(feature = "loud"))]
const AMPLITUDE: f32 = 0.25;
#[cfg(feature = "loud")]
const AMPLITUDE: f32 = 0.5;

/// The tone at the centre of the screen; the top is two octaves above the bottom.
pub const BASE_HZ: f64 = 256.0;
/// Volume, pan and echo-send changes glide over about this long, so they never click.
const SMOOTH_SECONDS: f64 = 0.005;
/// A waveform change crossfades over this long.
const CROSSFADE_SECONDS: f32 = 0.010;

const VOICES: usize = 8;
const LOOP_GAIN: f32 = 0.5;
/// A loop voice fades in and out over this long (the file's ends need not meet at zero).
const VOICE_FADE_SECONDS: f32 = 0.010;
const ECHO_SECONDS: f32 = 0.3;
/// Highest rate the echo line is sized for.
const MAX_RATE: f32 = 192_000.0;
const ECHO_FEEDBACK: f32 = 0.4;
const ECHO_WET: f32 = 0.5;
const LOOP_SEND: f32 = 0.6;
const TONE_SEND: f32 = 0.6;

/// Frames of the last output kept for the oscilloscope.
pub const SCOPE_FRAMES: usize = 2048;

/// The waveforms themselves; `Waveform` (what the player picked) lives with the controls.
impl Waveform {
    /// One sample at `phase` (cycles, 0..1) advancing `dt` cycles per sample, peak about 1
    /// and no DC. Square and saw use PolyBLEP to round their jumps (fewer aliases).
    fn sample(self, phase: f64, dt: f64) -> f32 {
        match self {
            Waveform::Sine => (TAU * phase).sin() as f32,
            Waveform::Square => {
                let raw = if phase < 0.5 { 1.0 } else { -1.0 };
                let shifted = (phase + 0.5).fract();
                (0.6 * (raw + poly_blep(phase, dt) - poly_blep(shifted, dt))) as f32
            }
            Waveform::Saw => (0.7 * (2.0 * phase - 1.0 - poly_blep(phase, dt))) as f32,
            Waveform::Triangle => (1.0 - 4.0 * (phase - 0.5).abs()) as f32,
        }
    }
}

/// The band-limited step correction at a jump of a naive waveform (at phase 0).
fn poly_blep(t: f64, dt: f64) -> f64 {
    if t < dt {
        let t = t / dt;
        t + t - t * t - 1.0
    } else if t > 1.0 - dt {
        let t = (t - 1.0) / dt;
        t * t + t + t + 1.0
    } else {
        0.0
    }
}

/// The tone's pitch for a player height (0 top .. 1 bottom): 512 Hz .. 128 Hz, exponential.
pub fn pitch_hz(player_y: f32) -> f64 {
    BASE_HZ * (2.0 * (0.5 - f64::from(player_y))).exp2()
}

/// Constant-power pan for `x` (0 left .. 1 right), normalised so the centre is exactly 1.0 on
/// both channels (the plain sine stays as it was); hard left or right is +3 dB on one side.
pub fn pan_gains(x: f32) -> [f32; 2] {
    let angle = f64::from(x.clamp(0.0, 1.0)) * FRAC_PI_2;
    [(angle.cos() * SQRT_2) as f32, (angle.sin() * SQRT_2) as f32]
}

/// The running part of the sound, in permanent storage.
#[repr(C)]
#[derive(Clone, Copy, StateLayout)]
pub struct SoundState {
    /// Phase in cycles, 0..1; kept in f64 so it does not drift over an hour.
    pub phase: f64,
    pub running_sample_index: u64,
    /// Glides toward the pitch the player's position asks for.
    pub frequency: f64,
    pub gains: [f32; 2],
    pub tone_send: f32,
    pub wave_from: Waveform,
    pub wave_to: Waveform,
    /// 0..1 from `wave_from` to `wave_to`; 1 when no change is in progress.
    pub crossfade: f32,
    pub scope: [[f32; SCOPE_FRAMES]; 2],
    /// Total frames ever written to the scope; the newest is at `(written - 1) % SCOPE_FRAMES`.
    pub scope_written: u64,
}

impl SoundState {
    pub fn new() -> Self {
        Self {
            phase: 0.0,
            running_sample_index: 0,
            frequency: BASE_HZ,
            gains: [1.0, 1.0],
            tone_send: 0.0,
            wave_from: Waveform::Sine,
            wave_to: Waveform::Sine,
            crossfade: 1.0,
            scope: [[0.0; SCOPE_FRAMES]; 2],
            scope_written: 0,
        }
    }

    fn oscillator(&mut self, dt: f64, fade_step: f32) -> f32 {
        if self.crossfade >= 1.0 {
            return self.wave_to.sample(self.phase, dt);
        }
        self.crossfade = (self.crossfade + fade_step).min(1.0);
        let (a, b) = (self.wave_from.sample(self.phase, dt), self.wave_to.sample(self.phase, dt));
        a + (b - a) * self.crossfade
    }

    fn record_scope(&mut self, left: &[f32], right: &[f32]) {
        for (&l, &r) in left.iter().zip(right) {
            let i = (self.scope_written % SCOPE_FRAMES as u64) as usize;
            self.scope[0][i] = l;
            self.scope[1][i] = r;
            self.scope_written += 1;
        }
    }
}

/// One playing copy of the loop sample.
#[derive(Clone, Copy, StateLayout)]
pub struct Voice {
    /// Frame position in the sample (fractional: the sample's rate may differ from ours).
    position: f64,
    fade: f32,
    releasing: bool,
}

const SILENT_VOICE: Voice = Voice { position: 0.0, fade: 0.0, releasing: false };

/// The mixer: a fixed pool of loop voices and an echo fed by a send bus.
#[derive(StateLayout)]
pub struct Mixer<'a> {
    voices: Pool<'a, Voice>,
    echo: DelayLine<'a>,
    /// The voice `space` started last, until it is stopped.
    looping: Option<PoolHandle>,
    send: [f32; MAX_SOUND_FRAMES],
}

impl<'a> Mixer<'a> {
    pub fn new(arena: &mut MemoryArena<'a>) -> Result<Self, ArenaError> {
        Ok(Self {
            voices: Pool::new(arena, VOICES, SILENT_VOICE)?,
            echo: DelayLine::new(arena, (ECHO_SECONDS * MAX_RATE) as usize)?,
            looping: None,
            send: [0.0; MAX_SOUND_FRAMES],
        })
    }

    /// Starts the loop, or fades out the one playing. Does nothing without a loop sample or
    /// when every voice is busy (still fading out).
    pub fn toggle_loop(&mut self, sample: &GameSample) {
        if let Some(voice) = self.looping.take().and_then(|h| self.voices.get_mut(h)) {
            voice.releasing = true;
            return;
        }
        if sample_channels(sample).is_none() {
            return;
        }
        self.looping = self.voices.acquire();
    }

    pub fn active_voices(&self) -> usize {
        self.voices.active()
    }

    pub fn is_looping(&self) -> bool {
        self.looping.is_some()
    }

    /// Adds every voice into `left`/`right` and into the echo send, and frees finished ones.
    fn mix_voices(&mut self, sample: &GameSample, rate: f32, left: &mut [f32], right: &mut [f32]) {
        let Some((sl, sr)) = sample_channels(sample) else { return };
        let step = f64::from(sample.samples_per_second) / f64::from(rate);
        let fade_step = 1.0 / (VOICE_FADE_SECONDS * rate);
        let send = &mut self.send;
        let mut finished = [None; VOICES];
        self.voices.for_each_active(|handle, voice| {
            for i in 0..left.len() {
                let target = if voice.releasing { 0.0 } else { 1.0 };
                voice.fade = move_toward(voice.fade, target, fade_step);
                if voice.releasing && voice.fade == 0.0 {
                    finished[handle.index()] = Some(handle);
                    break;
                }
                let (l, r) = read_looped(sl, sr, voice.position);
                let gain = LOOP_GAIN * voice.fade;
                left[i] += l * gain;
                right[i] += r * gain;
                send[i] += (l + r) * 0.5 * gain * LOOP_SEND;
                voice.position += step;
                if voice.position >= sl.len() as f64 {
                    voice.position -= sl.len() as f64;
                }
            }
        });
        for handle in finished.into_iter().flatten() {
            self.voices.release(handle);
        }
    }

    /// Feeds the send bus through the echo and adds its output to both channels.
    fn run_echo(&mut self, rate: f32, left: &mut [f32], right: &mut [f32]) {
        let delay = ECHO_SECONDS * rate;
        for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).enumerate() {
            let echoed = self.echo.read(delay);
            let mut feed = self.send[i] + echoed * ECHO_FEEDBACK;
            if feed.abs() < 1e-20 {
                feed = 0.0; // let the tail end in exact zeros, not denormals
            }
            self.echo.write(feed);
            *l += echoed * ECHO_WET;
            *r += echoed * ECHO_WET;
        }
    }
}

/// The sample's two channels, if the platform lent one.
fn sample_channels(sample: &GameSample) -> Option<(&[f32], &[f32])> {
    if sample.frame_count == 0 || sample.left.is_null() || sample.right.is_null() {
        return None;
    }
    let n = sample.frame_count as usize;
    // SAFETY: the platform decoded `frame_count` frames per channel into its own arena at
    // start-up and lends them read-only for the whole run (`GameAssets`).
    Some(unsafe { (core::slice::from_raw_parts(sample.left, n), core::slice::from_raw_parts(sample.right, n)) })
}

/// Linear interpolation between two frames, wrapping at the end (it is a loop).
fn read_looped(l: &[f32], r: &[f32], position: f64) -> (f32, f32) {
    let i = position as usize % l.len();
    let j = (i + 1) % l.len();
    let t = position.fract() as f32;
    (l[i] + (l[j] - l[i]) * t, r[i] + (r[j] - r[i]) * t)
}

fn move_toward(value: f32, target: f32, step: f32) -> f32 {
    if value < target {
        (value + step).min(target)
    } else {
        (value - step).max(target)
    }
}

/// One-pole glide that lands exactly on its target (so a settled value is bit-exact).
fn glide(value: f32, target: f32, k: f32) -> f32 {
    let next = value + (target - value) * k;
    // f32 stalls short of the target once a step is below half an ulp (~3e-6 from 1.0 at
    // 5 ms); the last 1e-4 (-80 dB) is jumped.
    if (target - next).abs() <= 1e-4 {
        target
    } else {
        next
    }
}

fn glide_f64(value: f64, target: f64, k: f64) -> f64 {
    let next = value + (target - value) * k;
    if (target - next).abs() <= 1e-9 * target.abs().max(1.0) {
        target
    } else {
        next
    }
}

/// Fills the platform's buffer. This has to be a very fast function: no allocation, no locks.
pub fn output(
    controls: &Controls,
    sound: &mut SoundState,
    mixer: &mut Mixer,
    loop_sample: &GameSample,
    buffer: &mut GameSoundOutputBuffer,
) {
    let rate = buffer.samples_per_second.max(1) as f32;
    let (left, right) = buffer.channels_mut();
    let n = left.len();
    synthesize_tone(controls, sound, &mut mixer.send[..n], rate, left, right);
    mixer.mix_voices(loop_sample, rate, left, right);
    mixer.run_echo(rate, left, right);
    sound.record_scope(left, right);
    sound.running_sample_index += n as u64;
}

/// Writes the tone into both channels (`=`, not `+=`) and its echo send into `send`.
fn synthesize_tone(
    controls: &Controls,
    s: &mut SoundState,
    send: &mut [f32],
    rate: f32,
    left: &mut [f32],
    right: &mut [f32],
) {
    let rate64 = f64::from(rate);
    let k = 1.0 - (-1.0 / (SMOOTH_SECONDS * rate64)).exp();
    let pan = pan_gains(controls.player_x);
    let gain_target = [pan[0] * controls.volume, pan[1] * controls.volume];
    let send_target = if controls.tone_echo { TONE_SEND } else { 0.0 };
    let frequency_target = pitch_hz(controls.player_y);
    if controls.waveform != s.wave_to {
        s.wave_from = s.wave_to;
        s.wave_to = controls.waveform;
        s.crossfade = 0.0;
    }
    let fade_step = 1.0 / (CROSSFADE_SECONDS * rate);
    for ((l, r), send) in left.iter_mut().zip(right.iter_mut()).zip(send.iter_mut()) {
        s.frequency = glide_f64(s.frequency, frequency_target, k);
        s.gains[0] = glide(s.gains[0], gain_target[0], k as f32);
        s.gains[1] = glide(s.gains[1], gain_target[1], k as f32);
        s.tone_send = glide(s.tone_send, send_target, k as f32);
        let step = s.frequency / rate64;
        let value = AMPLITUDE * s.oscillator(step, fade_step);
        *l = value * s.gains[0];
        *r = value * s.gains[1];
        *send = value * s.tone_send;
        s.phase += step;
        if s.phase >= 1.0 {
            s.phase -= 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_centre_is_the_plain_tone() {
        assert_eq!(pan_gains(0.5), [1.0, 1.0]);
        assert_eq!(pitch_hz(0.5), BASE_HZ);
        assert_eq!((pitch_hz(0.0), pitch_hz(1.0)), (512.0, 128.0));
    }

    #[test]
    fn pan_keeps_power_constant() {
        for x in [0.0, 0.1, 0.3, 0.5, 0.8, 1.0] {
            let [l, r] = pan_gains(x);
            assert!((l * l + r * r - 2.0).abs() < 1e-5, "x={x}");
        }
    }

    #[test]
    fn waveforms_have_no_dc() {
        for w in [Waveform::Sine, Waveform::Square, Waveform::Saw, Waveform::Triangle] {
            let n = 4800;
            let mean: f64 =
                (0..n).map(|i| f64::from(w.sample(i as f64 / n as f64, 1.0 / n as f64))).sum::<f64>() / n as f64;
            assert!(mean.abs() < 1e-3, "{w:?} mean {mean}");
        }
    }

    #[test]
    fn glides_land_exactly() {
        let mut v = 0.0f32;
        for _ in 0..10_000 {
            v = glide(v, 1.0, 0.01);
        }
        assert_eq!(v, 1.0);
    }
}
