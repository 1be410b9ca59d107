//! What the player controls, shared by the state (which updates it) and the sound and the
//! picture (which follow it). A leaf module: it imports neither, so they do not import each other.

use handmade_api::StateLayout;

/// What the player controls. `x` drives the pan, `y` the pitch; (0.5, 0.5) with volume 1 is
/// the plain 256 Hz sine the other tests listen for.
#[repr(C)]
#[derive(Clone, Copy, StateLayout)]
pub struct Controls {
    pub player_x: f32,
    pub player_y: f32,
    pub volume: f32,
    pub waveform: Waveform,
    /// Whether the tone feeds the echo (the loop always does).
    pub tone_echo: bool,
}

/// The tone's waveform, cycled with `f`; how each one sounds is in `sound.rs`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, StateLayout)]
pub enum Waveform {
    Sine = 0,
    Square = 1,
    Saw = 2,
    Triangle = 3,
}

impl Waveform {
    pub fn next(self) -> Self {
        match self {
            Waveform::Sine => Waveform::Square,
            Waveform::Square => Waveform::Saw,
            Waveform::Saw => Waveform::Triangle,
            Waveform::Triangle => Waveform::Sine,
        }
    }
}
