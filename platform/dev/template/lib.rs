//! A game for the handmade platform: a square you move with the arrow keys (or `w a s d`) and
//! a tone whose pitch follows it up and down. `handmade --game .` runs it and rebuilds and
//! reloads it on every save; all its state lives in the permanent storage the platform lends,
//! so the square stays where it was.

use handmade_api::{button, guard, GameApiInfo, GameInput, GameMemory, GameOffscreenBuffer, GameSoundOutputBuffer};
use handmade_api::{GameStateLayout, GameStatus, StateLayout};

/// The tone with the square in the middle, in Hz: change it, save, hear it.
const BASE_HZ: f32 = 256.0;

/// Everything the game keeps. Permanent storage starts zeroed, and all-zero is a valid `State`;
/// a reload that changes this shape starts it afresh (or exports `game_migrate_state`).
#[repr(C)]
#[derive(StateLayout)]
struct State { started: u32, x: f32, y: f32, phase: f32 }

fn state(memory: &mut GameMemory) -> Option<&mut State> {
    let ptr = memory.permanent_storage.cast::<State>();
    if !ptr.is_aligned() || memory.permanent_storage_size < core::mem::size_of::<State>() as u64 {
        return None;
    }
    // SAFETY: aligned and large enough (checked above; `as_mut` checks null); the platform lends
    // it to the game alone for the whole run; any bits (all-zero at start) are a valid `State`.
    let state = unsafe { ptr.as_mut() }?;
    if state.started == 0 {
        *state = State { started: 1, x: 0.5, y: 0.5, phase: 0.0 };
    }
    Some(state)
}

#[no_mangle]
pub extern "C" fn game_api_version() -> GameApiInfo {
    handmade_api::GAME_API_INFO
}

#[no_mangle]
pub extern "C" fn game_state_layout() -> GameStateLayout {
    GameStateLayout::of::<State>()
}

/// # Safety
/// The platform passes valid, exclusive pointers for this call.
#[no_mangle]
pub unsafe extern "C" fn game_update_and_render(
    memory: *mut GameMemory,
    input: *const GameInput,
    buffer: *mut GameOffscreenBuffer,
) -> GameStatus {
    // SAFETY: the caller's promise above.
    let (Some(memory), Some(input), Some(buffer)) = (unsafe { (memory.as_mut(), input.as_ref(), buffer.as_mut()) })
    else {
        return GameStatus::BadMemory;
    };
    guard(memory, |memory| {
        let Some(s) = state(memory) else { return GameStatus::BadMemory };
        let keys = &input.controllers[0].buttons;
        let axis = |minus: usize, plus: usize| f32::from(keys[plus].ended_down) - f32::from(keys[minus].ended_down);
        let step = 0.5 * input.dt_for_frame;
        s.x = (s.x + step * axis(button::MOVE_LEFT, button::MOVE_RIGHT)).clamp(0.0, 1.0);
        s.y = (s.y + step * axis(button::MOVE_DOWN, button::MOVE_UP)).clamp(0.0, 1.0);
        let (width, height, pitch) = (buffer.width as usize, buffer.height as usize, buffer.pitch as usize);
        let side = 32.min(width).min(height);
        let left = ((width - side) as f32 * s.x) as usize;
        let top = ((height - side) as f32 * (1.0 - s.y)) as usize;
        for (y, row) in buffer.pixels_mut().chunks_mut(pitch).enumerate() {
            row.fill(0x0010_1828); // 0x00RRGGBB
            if let Some(square) = row.get_mut(left..left + side).filter(|_| (top..top + side).contains(&y)) {
                square.fill(0x00ff_c040);
            }
        }
        GameStatus::Ok
    })
}

/// This has to be a very fast function: no allocation, no locks, no system calls.
///
/// # Safety
/// The platform passes valid, exclusive pointers for this call.
#[no_mangle]
pub unsafe extern "C" fn game_output_sound(memory: *mut GameMemory, sound: *mut GameSoundOutputBuffer) -> GameStatus {
    // SAFETY: the caller's promise above.
    let (Some(memory), Some(sound)) = (unsafe { (memory.as_mut(), sound.as_mut()) }) else {
        return GameStatus::BadMemory;
    };
    guard(memory, |memory| {
        let Some(s) = state(memory) else { return GameStatus::BadMemory };
        // One octave down at the bottom of the screen, one up at the top.
        let step = BASE_HZ * 2f32.powf(2.0 * s.y - 1.0) / sound.samples_per_second as f32;
        let (left, right) = sound.channels_mut();
        for (l, r) in left.iter_mut().zip(right) {
            let sample = 0.25 * (core::f32::consts::TAU * s.phase).sin();
            (*l, *r) = (sample, sample);
            s.phase = (s.phase + step).fract();
        }
        GameStatus::Ok
    })
}
