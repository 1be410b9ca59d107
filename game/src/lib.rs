//! The handmade demo game: a cdylib the platform loads and hot-reloads. The player moves a
//! square (arrows, `w a s d`, gamepad): its x pans a tone, its height sets the pitch; `q`/`e`
//! change the volume, `f` the waveform, `r` sends the tone to the echo, `space` starts or stops
//! the `data/loop.wav` loop (see the README, "The demo"). All of its state lives
//! in the permanent storage the platform lends, so a reload keeps it; every export runs inside
//! `handmade_api::guard`, so a panic becomes a status code instead of an abort.
#![deny(unsafe_op_in_unsafe_fn)]

mod controls;
mod faults;
mod render;
mod sound;
mod state;

use handmade_api::{
    guard, GameApiInfo, GameInput, GameMemory, GameOffscreenBuffer, GameSoundOutputBuffer, GameStateLayout, GameStatus,
};

use state::GameState;

#[cfg(not(feature = "other-abi"))]
const API_INFO: GameApiInfo = handmade_api::GAME_API_INFO;
#[cfg(feature = "other-abi")]
const API_INFO: GameApiInfo = GameApiInfo { version: handmade_api::GAME_API_VERSION + 1, layout_hash: 1 };

#[no_mangle]
pub extern "C" fn game_api_version() -> GameApiInfo {
    API_INFO
}

/// # Safety
/// The platform passes valid, exclusive pointers to the contract's types for this call.
#[no_mangle]
pub unsafe extern "C" fn game_update_and_render(
    memory: *mut GameMemory,
    input: *const GameInput,
    buffer: *mut GameOffscreenBuffer,
) -> GameStatus {
    // SAFETY: the caller guarantees the pointers are valid and unaliased for this call.
    let (Some(memory), Some(input), Some(buffer)) =
        (unsafe { memory.as_mut() }, unsafe { input.as_ref() }, unsafe { buffer.as_mut() })
    else {
        return GameStatus::BadMemory;
    };
    silence_panic_output();
    guard(memory, |memory| {
        faults::in_update();
        let Some(state) = GameState::from_memory(memory) else {
            return GameStatus::BadMemory;
        };
        #[cfg(feature = "panic-update")]
        if state.frame < u64::MAX {
            panic!("panic-update variant: update failed on purpose");
        }
        #[cfg(feature = "state-grow")]
        {
            state.reloads_seen += u64::from(memory.reloaded != 0);
        }
        state.update(input, &memory.assets.loop_sample);
        render::draw(state, memory, buffer);
        GameStatus::Ok
    })
}

/// The shape of what this library keeps in permanent storage.
#[no_mangle]
pub extern "C" fn game_state_layout() -> GameStateLayout {
    GameStateLayout::of::<GameState>()
}

/// Carries the state an older library left over to this one's layout (see `GameState::migrate`).
///
/// # Safety
/// `memory` is valid and exclusive for this call; `old_storage` is null or a read-only copy of
/// `old_storage_size` bytes of the old permanent storage, as the contract describes.
#[cfg(not(feature = "state-grow-no-migrate"))]
#[no_mangle]
pub unsafe extern "C" fn game_migrate_state(
    memory: *mut GameMemory,
    old_storage: *const u8,
    old_storage_size: u64,
    old_layout: GameStateLayout,
) -> GameStatus {
    // SAFETY: the caller guarantees the pointer is valid and unaliased for this call.
    let Some(memory) = (unsafe { memory.as_mut() }) else {
        return GameStatus::BadMemory;
    };
    silence_panic_output();
    guard(memory, |memory| {
        // SAFETY: the caller's promise about `old_storage`, passed on.
        match unsafe { GameState::migrate(memory, old_storage, old_storage_size, old_layout) } {
            Some(()) => GameStatus::Ok,
            None => GameStatus::CannotMigrate,
        }
    })
}

/// This has to be a very fast function: no allocation, no locks, no system calls.
///
/// # Safety
/// The platform passes valid, exclusive pointers to the contract's types for this call.
#[no_mangle]
pub unsafe extern "C" fn game_output_sound(memory: *mut GameMemory, sound: *mut GameSoundOutputBuffer) -> GameStatus {
    // SAFETY: as above.
    let (Some(memory), Some(sound)) = (unsafe { memory.as_mut() }, unsafe { sound.as_mut() }) else {
        return GameStatus::BadMemory;
    };
    guard(memory, |memory| {
        let Some(state) = GameState::from_memory(memory) else {
            return GameStatus::BadMemory;
        };
        #[cfg(feature = "panic-sound")]
        if state.sound.running_sample_index > 0 {
            panic!("panic-sound variant: sound failed on purpose");
        }
        faults::in_sound(state.sound.running_sample_index);
        sound::output(&state.controls, &mut state.sound, &mut state.mixer, &memory.assets.loop_sample, sound);
        #[cfg(feature = "bad-sound")]
        write_garbage(state.sound.running_sample_index, sound);
        GameStatus::Ok
    })
}

/// The platform reports panics in one line from `GameMemory::panic_message`; the default hook
/// would also print a backtrace note to stderr. The hook lives in this library's own copy of
/// std and goes away with it on unload.
fn silence_panic_output() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SILENCED: AtomicBool = AtomicBool::new(false);
    if !SILENCED.swap(true, Ordering::Relaxed) {
        std::panic::set_hook(Box::new(|_| {}));
    }
}

/// The `bad-sound` test variant: for two frames after the first second, NaN and infinite
/// samples and a nonsense frame count, which the platform must survive and report once.
#[cfg(feature = "bad-sound")]
fn write_garbage(running_sample_index: u64, sound: &mut GameSoundOutputBuffer) {
    if (48_000..49_600).contains(&running_sample_index) {
        sound.sample_count = 123_456;
        let (left, right) = sound.channels_mut();
        left[..10].fill(f32::NAN);
        right[..10].fill(f32::INFINITY);
    }
}
