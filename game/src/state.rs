//! The game's state: one plain-data struct at the start of permanent storage, initialised
//! once (permanent storage starts zeroed) and kept across reloads.

use handmade_api::{button, GameInput, GameMemory};

use crate::sound::SoundState;

/// Marks initialised storage; bump it when `GameState` changes shape so old state is not
/// misread after a reload (it is then re-initialised).
const STATE_MAGIC: u64 = 0x4841_4e44_4d41_0001;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct GameState {
    magic: u64,
    pub frame: u64,
    pub player_x: f32,
    pub player_y: f32,
    pub sound: SoundState,
}

impl GameState {
    /// The state in `memory`'s permanent storage, initialised on first use. Its lifetime is
    /// not tied to `memory`: the storage is a separate region that outlives every call.
    pub fn from_memory<'s>(memory: &mut GameMemory) -> Option<&'s mut GameState> {
        let size = core::mem::size_of::<GameState>();
        let ptr = memory.permanent_storage.cast::<GameState>();
        if ptr.is_null() || (memory.permanent_storage_size as usize) < size || !ptr.is_aligned() {
            return None;
        }
        memory.game_arena_high_water = memory.game_arena_high_water.max(size as u64);
        // SAFETY: the platform lends `permanent_storage_size` bytes, zeroed at start-up and used
        // only by the game, for the whole process (it is never unmapped while a game is loaded);
        // the pointer is non-null, aligned and the region large enough. A zeroed
        // `GameState` is a valid value (all fields are integers and floats).
        let state = unsafe { &mut *ptr };
        if state.magic != STATE_MAGIC {
            *state = GameState {
                magic: STATE_MAGIC,
                frame: 0,
                player_x: 0.5,
                player_y: 0.5,
                sound: SoundState::new(),
            };
        }
        Some(state)
    }

    pub fn update(&mut self, input: &GameInput) {
        self.frame += 1;
        let keys = &input.controllers[0].buttons;
        let speed = 0.4 * input.dt_for_frame;
        let axis = |neg: usize, pos: usize| {
            f32::from(keys[pos].ended_down) - f32::from(keys[neg].ended_down)
        };
        self.player_x =
            (self.player_x + speed * axis(button::MOVE_LEFT, button::MOVE_RIGHT)).clamp(0.0, 1.0);
        self.player_y =
            (self.player_y + speed * axis(button::MOVE_UP, button::MOVE_DOWN)).clamp(0.0, 1.0);
    }
}
