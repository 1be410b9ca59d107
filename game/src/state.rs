//! The game's state: one struct at the start of permanent storage, initialised once
//! (permanent storage starts zeroed) and kept across reloads, followed by the game's arena
//! (the mixer's voice pool and echo line live there). Plain data and references into the block
//! only, so a reloaded library reads it as it was left. When its shape changes (its
//! `StateLayout` fingerprint), the platform asks `migrate` to carry the old state over.

use handmade_api::{button, old_state, GameInput, GameMemory, GameSample, GameStateLayout, MemoryArena, StateLayout};

use crate::controls::{Controls, Waveform};
use crate::sound::{Mixer, SoundState};

/// Marks initialised storage: the state's own fingerprint, so storage a library with another
/// shape left is never mistaken for this one's (nobody bumps it by hand).
const STATE_MAGIC: u64 = GameState::FINGERPRINT;

/// Player speed in screen widths per second.
const PLAYER_SPEED: f32 = 0.4;
/// Volume change per second while `q`/`e` (or a shoulder button) is held.
const VOLUME_SPEED: f32 = 1.0;
pub const MAX_VOLUME: f32 = 2.0;

#[repr(C)]
#[derive(StateLayout)]
pub struct GameState {
    magic: u64,
    pub frame: u64,
    pub controls: Controls,
    pub sound: SoundState,
    pub mixer: Mixer<'static>,
    /// The rest of permanent storage, after this struct.
    pub arena: MemoryArena<'static>,
    /// The `state-grow` test variant: a field the default shape lacks (reloads it has lived
    /// through, shown as lamps in the HUD), so its state must be migrated.
    #[cfg(feature = "state-grow")]
    pub reloads_seen: u64,
}

/// Earlier shapes of the state, frozen so a newer library can migrate from them. They keep
/// their type names: the fingerprint mixes names, not module paths.
#[cfg_attr(feature = "state-grow-no-migrate", allow(dead_code))] // that variant cannot migrate
pub mod v1 {
    use super::*;

    /// The state as the default build lays it out (contract version 4).
    #[repr(C)]
    #[derive(StateLayout)]
    pub struct GameState {
        pub magic: u64,
        pub frame: u64,
        pub controls: Controls,
        pub sound: SoundState,
        pub mixer: Mixer<'static>,
        pub arena: MemoryArena<'static>,
    }
}

impl GameState {
    /// The state in `memory`'s permanent storage, initialised on first use. Its lifetime is
    /// not tied to `memory`: the storage is a separate region that outlives every call.
    pub fn from_memory<'s>(memory: &mut GameMemory) -> Option<&'s mut GameState> {
        let ptr = Self::storage(memory)?;
        // SAFETY: `storage` checked the region: the platform lends `permanent_storage_size`
        // bytes, zeroed at start-up and used only by the game, for the whole process (never
        // unmapped while a game is loaded). The magic is read first; a `u64` is valid for any bits.
        let magic = unsafe { core::ptr::addr_of!((*ptr).magic).read() };
        if magic != STATE_MAGIC {
            Self::replace(memory, |_| ())?;
        }
        // SAFETY: as above, and the storage now holds a `GameState` this game wrote.
        let state = unsafe { &mut *ptr };
        let used = core::mem::size_of::<GameState>() + state.arena.high_water();
        memory.game_arena_high_water = memory.game_arena_high_water.max(used as u64);
        Some(state)
    }

    /// Where the state goes: the start of permanent storage, if it is there, aligned and large
    /// enough.
    fn storage(memory: &GameMemory) -> Option<*mut GameState> {
        let ptr = memory.permanent_storage.cast::<GameState>();
        let fits = memory.permanent_storage_size >= core::mem::size_of::<GameState>() as u64;
        (!ptr.is_null() && fits && ptr.is_aligned()).then_some(ptr)
    }

    /// Writes a fresh state (and arena) over permanent storage, after `carry` has brought over
    /// what it keeps from an older one.
    fn replace(memory: &GameMemory, carry: impl FnOnce(&mut GameState)) -> Option<()> {
        let ptr = Self::storage(memory)?;
        let mut fresh = Self::create(memory.permanent_storage, memory.permanent_storage_size as usize)?;
        carry(&mut fresh);
        // SAFETY: as in `from_memory`; `write` does not drop whatever bits were there before.
        unsafe { ptr.write(fresh) };
        Some(())
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
            #[cfg(feature = "state-grow")]
            reloads_seen: 0,
        })
    }

    /// Builds this library's state from what an older one left (`old_storage`, a copy). Only
    /// `v1` is known. Its plain parts (frame, controls, the running sound) carry over, so the
    /// tone goes on sample-exactly; the mixer and its arena start afresh, because the arena
    /// begins right after the state and the state's size is what changed.
    ///
    /// # Safety
    /// `old_storage` must be null or valid for reads of `old_storage_size` bytes for this call,
    /// holding what the library with `old_layout` left there.
    #[cfg_attr(feature = "state-grow-no-migrate", allow(dead_code))] // that variant cannot migrate
    pub unsafe fn migrate(
        memory: &mut GameMemory,
        old_storage: *const u8,
        old_storage_size: u64,
        old_layout: GameStateLayout,
    ) -> Option<()> {
        // Storage the old library never initialised is all zero, which is no valid state (it
        // holds references): its marker, the first `u64`, is checked before anything else.
        let marker_fits = old_storage_size >= 8 && !old_storage.is_null();
        // SAFETY: at least 8 readable bytes (the caller's promise); any bits are a `u64`.
        let marker = marker_fits.then(|| unsafe { old_storage.cast::<u64>().read_unaligned() });
        if marker != Some(<v1::GameState as StateLayout>::FINGERPRINT) {
            return None;
        }
        // SAFETY: the caller's promise, and the marker says the v1 library initialised it.
        let old = unsafe { old_state::<v1::GameState>(old_storage, old_storage_size, old_layout) }?;
        Self::replace(memory, |new| {
            new.frame = old.frame;
            new.controls = old.controls;
            new.sound = old.sound;
        })?;
        Self::from_memory(memory).map(|_| ())
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

#[cfg(test)]
mod tests {
    use handmade_api::{GameAssets, GameSoundOutputBuffer};

    use super::*;

    const NO_SAMPLE: GameSample =
        GameSample { left: core::ptr::null(), right: core::ptr::null(), frame_count: 0, samples_per_second: 0 };

    /// Permanent storage for a test: zeroed and 8-byte aligned.
    fn storage() -> Vec<u64> {
        vec![0u64; (1 << 20) / 8]
    }

    fn memory_over(storage: &mut [u64]) -> GameMemory {
        GameMemory {
            permanent_storage: storage.as_mut_ptr().cast(),
            permanent_storage_size: (storage.len() * 8) as u64,
            transient_storage: core::ptr::null_mut(),
            transient_storage_size: 0,
            assets: GameAssets { loop_sample: NO_SAMPLE },
            audio_sync: core::ptr::null(),
            reloaded: 0,
            game_arena_high_water: 0,
            panic_message: [0; 256],
            panic_message_len: 0,
        }
    }

    /// What a default (v1) library leaves in `storage`: a v1 state, its arena after it.
    fn v1_state_in(storage: &mut [u64]) -> &mut v1::GameState {
        let base = storage.as_mut_ptr().cast::<u8>();
        let size = core::mem::size_of::<v1::GameState>();
        // SAFETY: `storage` outlives the returned state and is used by nothing else meanwhile.
        let mut arena = unsafe { MemoryArena::from_raw_parts("v1", base.wrapping_add(size), storage.len() * 8 - size) };
        let mixer = Mixer::new(&mut arena).unwrap();
        let state = v1::GameState {
            magic: <v1::GameState as StateLayout>::FINGERPRINT,
            frame: 77,
            controls: Controls {
                player_x: 0.5,
                player_y: 0.25,
                volume: 1.0,
                waveform: Waveform::Saw,
                tone_echo: false,
            },
            sound: SoundState::new(),
            mixer,
            arena,
        };
        let ptr = base.cast::<v1::GameState>();
        // SAFETY: `storage` is aligned for and larger than a `v1::GameState`, and exclusively ours.
        unsafe {
            ptr.write(state);
            &mut *ptr
        }
    }

    /// What the platform hands `game_migrate_state`: a copy of the old state's bytes (the
    /// arena after it is not read), 8-byte aligned.
    fn copy_of(state: &v1::GameState) -> Vec<u64> {
        let size = core::mem::size_of::<v1::GameState>();
        let mut copy = vec![0u64; size.div_ceil(8)];
        // SAFETY: `state` is `size` readable bytes; `copy` is at least as long; they are distinct.
        unsafe {
            core::ptr::copy_nonoverlapping((state as *const v1::GameState).cast::<u8>(), copy.as_mut_ptr().cast(), size)
        };
        copy
    }

    fn play(controls: &Controls, sound: &mut SoundState, mixer: &mut Mixer, frames: usize) -> Vec<f32> {
        let (mut left, mut right) = (vec![0.0; frames], vec![0.0; frames]);
        let mut buffer = GameSoundOutputBuffer::lend(48_000, sound.running_sample_index, &mut left, &mut right);
        crate::sound::output(controls, sound, mixer, &NO_SAMPLE, &mut buffer);
        left.into_iter().chain(right).collect()
    }

    #[test]
    fn v1_is_the_default_shape() {
        let (v1, now) = (<v1::GameState as StateLayout>::FINGERPRINT, GameState::FINGERPRINT);
        println!("GameState fingerprint {now:#018x} (v1 {v1:#018x}), {:?}", GameStateLayout::of::<GameState>());
        assert_eq!(v1 == now, cfg!(not(feature = "state-grow")));
    }

    #[test]
    fn a_v1_state_migrates_and_its_tone_goes_on_sample_exactly() {
        let mut old = storage();
        let v1 = v1_state_in(&mut old);
        play(&v1.controls, &mut v1.sound, &mut v1.mixer, 1000);
        let copy = copy_of(v1);
        let expected = play(&v1.controls, &mut v1.sound, &mut v1.mixer, 800);
        let mut live = storage();

        let mut memory = memory_over(&mut live);
        let layout = GameStateLayout::of::<v1::GameState>();
        // SAFETY: `copy` is a readable copy of storage a v1 library initialised.
        let migrated =
            unsafe { GameState::migrate(&mut memory, copy.as_ptr().cast(), (copy.len() * 8) as u64, layout) };
        assert_eq!(migrated, Some(()));
        let state = GameState::from_memory(&mut memory).unwrap();
        assert_eq!((state.frame, state.controls.player_y, state.controls.waveform), (77, 0.25, Waveform::Saw));
        assert_eq!(state.sound.running_sample_index, 1000);
        #[cfg(feature = "state-grow")]
        assert_eq!(state.reloads_seen, 0);
        assert!(play(&state.controls, &mut state.sound, &mut state.mixer, 800) == expected, "the tone jumped");
    }

    #[test]
    fn unknown_or_uninitialised_old_state_is_not_migrated() {
        let mut old = storage();
        v1_state_in(&mut old);
        let (mut live, zeroed) = (storage(), storage());
        let mut memory = memory_over(&mut live);
        let v1 = GameStateLayout::of::<v1::GameState>();
        let migrate = |memory: &mut GameMemory, from: &[u64], layout| {
            // SAFETY: `from` is readable for its whole length during the call.
            unsafe { GameState::migrate(memory, from.as_ptr().cast(), (from.len() * 8) as u64, layout) }
        };
        assert_eq!(migrate(&mut memory, &old, GameStateLayout { fingerprint: 1, ..v1 }), None);
        assert_eq!(migrate(&mut memory, &zeroed, v1), None, "never initialised");
        assert_eq!(migrate(&mut memory, &old[..8], v1), None, "too short");
        assert_eq!(live.iter().filter(|&&w| w != 0).count(), 0, "a refused migration writes nothing");
    }
}
