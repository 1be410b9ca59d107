//! The game's sound: a sine whose phase and running sample index live in permanent storage, so
//! the waveform continues sample-exactly across reloads.

use handmade_api::GameSoundOutputBuffer;

use crate::state::GameState;

#[cfg(not(feature = "loud"))]
const AMPLITUDE: f32 = 0.25;
#[cfg(feature = "loud")]
const AMPLITUDE: f32 = 0.5;

const BASE_HZ: f64 = 256.0;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SoundState {
    /// Phase in cycles, 0..1; kept in f64 so it does not drift over an hour.
    pub phase: f64,
    pub running_sample_index: u64,
}

impl SoundState {
    pub fn new() -> Self {
        Self {
            phase: 0.0,
            running_sample_index: 0,
        }
    }
}

pub fn output(state: &mut GameState, buffer: &mut GameSoundOutputBuffer) {
    let rate = f64::from(buffer.samples_per_second.max(1));
    let step = BASE_HZ / rate;
    let s = &mut state.sound;
    let (left, right) = buffer.channels_mut();
    for (l, r) in left.iter_mut().zip(right.iter_mut()) {
        let value = AMPLITUDE * (core::f64::consts::TAU * s.phase).sin() as f32;
        *l = value;
        *r = value;
        s.phase += step;
        if s.phase >= 1.0 {
            s.phase -= 1.0;
        }
    }
    s.running_sample_index += left.len() as u64;
}
