//! The game's state: one struct at the start of permanent storage, initialised once
//! (permanent storage starts zeroed) and kept across reloads, followed by the game's arena
//! (the mixer's voice pool and echo line live there). Plain data and references into the block
//! only, so a reloaded library reads it as it was left.

use handmade_api::{button, GameInput, GameMemory, GameSample, MemoryArena};

use crate::controls::{Controls, Waveform};
use crate::sound::{Mixer, SoundState};

/// Marks initialised storage; bump it when `GameState` (or a type inside it, such as the
/// toolkit's `Pool`/`DelayLine`) changes shape so old state is not misread after a reload.
const STATE_MAGIC: u64 = 0x4841_4e44_4d41_0002;

/// Player speed in screen widths per second.
const PLAYER_SPEED: f32 = 0.4;
/// Volume change per second while `q`/`e` (or a shoulder button) is held.
const VOLUME_SPEED: f32 = 1.0;
pub const MAX_VOLUME: f32 = 2.0;

#[repr(C)]
pub struct GameState {
    magic: u64,
    pub frame: u64,
    pub controls: Controls,
    pub sound: SoundState,
    pub mixer: Mixer<'static>,
    /// The rest of permanent storage, after this struct.
    pub arena: MemoryArena<'static>,
}

impl GameState {
    /// The state in `memory`'s permanent storage, initialised on first use. Its lifetime is
    /// not tied to `memory`: the storage is a separate region that outlives every call.
    pub fn from_memory<'s>(memory: &mut GameMemory) -> Option<&'s mut GameState> {
        let size = core::mem::size_of::<GameState>();
        let ptr = memory.permanent_storage.cast::<GameState>();
        let total = memory.permanent_storage_size as usize;
        if ptr.is_null() || total < size || !ptr.is_aligned() {
            return None;
        }
        // SAFETY: the platform lends `permanent_storage_size` bytes, zeroed at start-up and used
        // only by the game, for the whole process (never unmapped while a game is loaded); the
        // pointer is non-null, aligned and the region large enough. The magic is read first and
        // a `u64` is valid for any bits.
        let magic = unsafe { core::ptr::addr_of!((*ptr).magic).read() };
        if magic != STATE_MAGIC {
            let fresh = Self::create(memory.permanent_storage, total)?;
            // SAFETY: as above; `write` does not drop whatever bits were there before.
            unsafe { ptr.write(fresh) };
        }
        // SAFETY: as above, and the storage now holds a `GameState` this game wrote.
        let state = unsafe { &mut *ptr };
        memory.game_arena_high_water = memory.game_arena_high_water.max((size + state.arena.high_water()) as u64);
        Some(state)
    }

    fn create(base: *mut u8, total: usize) -> Option<GameState> {
        let size = core::mem::size_of::<GameState>();
        // SAFETY: `base + size .. base + total` is the part of permanent storage after the
        // `GameState` at its start; only this arena hands it out, for the life of the process.
        let mut arena = unsafe { MemoryArena::from_raw_parts("game permanent", base.wrapping_add(size), total - size) };
        let mixer = Mixer::new(&mut arena).ok()?;
        Some(GameState {
            magic: STATE_MAGIC,
            frame: 0,
            controls: Controls {
                player_x: 0.5,
                player_y: 0.5,
                volume: 1.0,
                waveform: Waveform::Sine,
                tone_echo: false,
            },
            sound: SoundState::new(),
            mixer,
            arena,
        })
    }

    pub fn update(&mut self, input: &GameInput, loop_sample: &GameSample) {
        self.frame += 1;
        let dt = input.dt_for_frame;
        let (dx, dy) = movement(input);
        let c = &mut self.controls;
        c.player_x = (c.player_x + PLAYER_SPEED * dt * dx).clamp(0.0, 1.0);
        c.player_y = (c.player_y + PLAYER_SPEED * dt * dy).clamp(0.0, 1.0);
        let volume = held(input, 'e', button::RIGHT_SHOULDER) - held(input, 'q', button::LEFT_SHOULDER);
        c.volume = (c.volume + VOLUME_SPEED * dt * volume).clamp(0.0, MAX_VOLUME);
        if pressed(input, 'f', button::ACTION_LEFT) {
            c.waveform = c.waveform.next();
        }
        if pressed(input, 'r', button::ACTION_UP) {
            c.tone_echo = !c.tone_echo;
        }
        if pressed_button(input, button::ACTION_DOWN) {
            self.mixer.toggle_loop(loop_sample);
        }
    }
}

/// Arrows and `w a s d` on the keyboard; d-pad and left stick on gamepads. -1..1 per axis,
/// y pointing down the screen.
fn movement(input: &GameInput) -> (f32, f32) {
    let key = |c| f32::from(input.letter(c).ended_down);
    let mut x = key('d') - key('a');
    let mut y = key('s') - key('w');
    for c in input.controllers.iter().filter(|c| c.is_connected != 0) {
        let b = |i: usize| f32::from(c.buttons[i].ended_down);
        x += b(button::MOVE_RIGHT) - b(button::MOVE_LEFT) + c.stick_average_x;
        y += b(button::MOVE_DOWN) - b(button::MOVE_UP) - c.stick_average_y;
    }
    (x.clamp(-1.0, 1.0), y.clamp(-1.0, 1.0))
}

/// 1.0 while the letter or the gamepad button is held.
fn held(input: &GameInput, letter: char, b: usize) -> f32 {
    let pad = input.controllers[1..].iter().any(|c| c.buttons[b].is_down());
    f32::from(u8::from(input.letter(letter).is_down() || pad))
}

fn pressed(input: &GameInput, letter: char, b: usize) -> bool {
    input.letter(letter).was_pressed() || input.controllers[1..].iter().any(|c| c.buttons[b].was_pressed())
}

/// Keyboard `space` arrives as the keyboard controller's ACTION_DOWN.
fn pressed_button(input: &GameInput, b: usize) -> bool {
    input.controllers.iter().any(|c| c.buttons[b].was_pressed())
}
