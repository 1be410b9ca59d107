//! The contract between the handmade platform and a game (this project's
//! `handmade_platform.h`). A game is a `cdylib` crate that depends on this one. The platform
//! loads it, calls it every frame and reloads it whenever it is rebuilt, keeping its memory:
//! `handmade new DIR` writes one (the [complete game](#a-complete-game) below) and
//! `handmade --game DIR` runs it, rebuilding and reloading it on every save.
//!
//! # The two halves
//!
//! **Services the platform provides to the game**, plain `#[repr(C)]` data lent for a call:
//! [`GameMemory`] (permanent storage, zeroed once at start-up and kept across reloads;
//! transient scratch; assets; [`AudioSyncRing`] for a debug display), [`GameInput`] (controller 0
//! is the keyboard, 1.. are gamepads, with Handmade Hero's ended-down and half-transition
//! [`GameButtonState`]s), [`GameOffscreenBuffer`] (the bitmap to draw, pixels `0x00RRGGBB`) and
//! [`GameSoundOutputBuffer`] (the platform's stack sample buffer, two `f32` channels).
//!
//! **Services the game provides to the platform**, `#[no_mangle] extern "C"` functions:
//!
//! | export | needed | called | type |
//! |---|---|---|---|
//! | `game_api_version` | yes | at load: return [`GAME_API_INFO`] | [`GameApiVersionFn`] |
//! | `game_update_and_render` | yes | each frame: input in, state updated, bitmap drawn | [`GameUpdateAndRenderFn`] |
//! | `game_output_sound` | yes | each frame, after the update: `sample_count` frames | [`GameOutputSoundFn`] |
//! | `game_state_layout` | no | at load: the shape of the state | [`GameStateLayoutFn`] |
//! | `game_migrate_state` | no | at a reload that changed the state's shape | [`GameMigrateStateFn`] |
//!
//! A library built against another version of this crate (another [`GAME_API_VERSION`] or
//! [`LAYOUT_HASH`], which changes with any field of any type here) is refused at load, in one
//! line, and the running game keeps going.
//!
//! # The rules
//!
//! - **`game_output_sound` does not allocate, lock or make system calls.** It runs in the frame
//!   loop just before the device write, and the platform counts (`--stats`:
//!   `sound_heap_allocs`, `heap_allocs_after_warmup`). Keep every buffer it needs in memory.
//! - **State lives only in the lent memory.** Whatever must last goes in `permanent_storage`: a
//!   `#[repr(C)]` struct at its start, more room through a [`MemoryArena`] over the rest. Not in
//!   `static`s or `thread_local!`s, which belong to the library and are gone at a reload, and not
//!   in heap objects made by the old code (`Box<dyn _>`, `String`), whose code and constants are
//!   unmapped with it. Input, bitmap and sound buffers are lent for one call: keep no pointer.
//! - **What survives a reload:** permanent storage byte for byte (the block never moves, so
//!   pointers into it stay valid), the platform's sound position, the window and the device.
//!   Not: statics, function pointers, `&'static` data of the old library. `memory.reloaded` is
//!   set on the first call after each load. Transient storage is scratch: it promises nothing.
//! - **State shape and migration:** derive [`StateLayout`] on the state and export
//!   `game_state_layout` returning [`GameStateLayout::of`]. When a rebuild changes the shape (a
//!   field added, moved or retyped), the platform never reads the old bytes as the new type: it
//!   calls `game_migrate_state` with a copy of the old storage (read it with [`old_state`]) or,
//!   without that export or when it answers [`GameStatus::CannotMigrate`], zeroes permanent
//!   storage so the game starts afresh. All-zero must therefore mean "not started yet".
//! - **Every export runs its body in [`guard`]**: a panic becomes [`GameStatus::Panicked`] and one
//!   line of log instead of an abort (unwinding out of `extern "C"` aborts). The platform also
//!   survives a crash or a hang (it rolls back a library that fails within 60 frames of its load,
//!   or pauses the game until the next good build), but that is its last resort, not the design.
//!
//! # A complete game
//!
//! The one `handmade new` writes (a square the arrow keys move, a tone whose pitch follows it),
//! checked here as a doc test that also calls its exports the way the platform does:
//!
//! ```
#![cfg_attr(any(doc, doctest), doc = include_str!("../../dev/template/lib.rs"))]
//! # // The platform's half, by hand: lend memory, input, a bitmap and a sound buffer.
//! # use handmade_api::{GameAssets, GameSample};
//! # let mut permanent = vec![0u64; 64];
//! # let nothing = GameSample { left: std::ptr::null(), right: std::ptr::null(), frame_count: 0, samples_per_second: 0 };
//! # let mut memory = GameMemory {
//! #     permanent_storage: permanent.as_mut_ptr().cast(), permanent_storage_size: 512,
//! #     transient_storage: std::ptr::null_mut(), transient_storage_size: 0,
//! #     assets: GameAssets { loop_sample: nothing }, audio_sync: std::ptr::null(), reloaded: 1,
//! #     game_arena_high_water: 0, panic_message: [0; 256], panic_message_len: 0,
//! # };
//! # let mut input = GameInput { dt_for_frame: 1.0 / 60.0, ..Default::default() };
//! # input.controllers[0].buttons[button::MOVE_RIGHT].ended_down = 1;
//! # let mut pixels = vec![0u32; 64 * 48];
//! # let mut bitmap = GameOffscreenBuffer::lend(&mut pixels, 64, 48);
//! # assert_eq!(unsafe { game_update_and_render(&mut memory, &input, &mut bitmap) }, GameStatus::Ok);
//! # let (mut left, mut right) = ([0.0f32; 800], [0.0f32; 800]);
//! # let mut sound = GameSoundOutputBuffer::lend(48_000, 0, &mut left, &mut right);
//! # assert_eq!(unsafe { game_output_sound(&mut memory, &mut sound) }, GameStatus::Ok);
//! # assert!(left == right && left.iter().any(|&s| s > 0.2), "a tone on both channels");
//! # assert!(pixels.contains(&0x00ff_c040), "the square is drawn");
//! # assert_eq!(game_api_version(), handmade_api::GAME_API_INFO);
//! # assert_eq!(game_state_layout(), GameStateLayout::of::<State>());
//! ```
//!
//! # Lending a sound buffer
//!
//! The platform's side of `game_output_sound`, and what the layout hash is:
//!
//! ```
//! use handmade_api::{GameSoundOutputBuffer, LAYOUT_HASH};
//! let (mut left, mut right) = ([0.0f32; 800], [0.0f32; 800]);
//! let mut sound = GameSoundOutputBuffer::lend(48_000, 0, &mut left, &mut right);
//! let (l, r) = sound.channels_mut();
//! l[0] = 1.0;
//! r[0] = -1.0;
//! assert_eq!(sound.sample_count, 800);
//! assert_ne!(LAYOUT_HASH, 0);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

// `#[derive(StateLayout)]` names `::handmade_api`, here as in the game.
extern crate self as handmade_api;

pub mod arena;
pub mod layout;
pub mod rt;

pub use arena::{ArenaError, MemoryArena, TempMemory};
pub use handmade_api_derive::StateLayout;
pub use layout::StateLayout;

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use layout::Fnv;

// ------------------------------------------------------------------------------------------
// Services the platform provides to the game
// ------------------------------------------------------------------------------------------

/// Bumped whenever the meaning (not only the layout) of the contract changes.
pub const GAME_API_VERSION: u32 = 4;

/// The most sample frames one `game_output_sound` call is asked for: 100 ms at 48 kHz.
/// The platform's stack sample buffer has exactly this many frames per channel.
pub const MAX_SOUND_FRAMES: usize = 4800;

/// How many controllers the input carries: index 0 is the keyboard, 1.. are gamepads.
pub const MAX_CONTROLLERS: usize = 5;

/// Capacity of the audio-sync debug ring the platform lends the game (Handmade Hero day 20).
pub const AUDIO_SYNC_MARKERS: usize = 64;

/// The game's memory: two regions of the platform's one memory block, plus what the platform
/// lends for the frame. Plain data only: everything here survives a reload.
#[repr(C)]
#[derive(Debug, Clone, Copy, StateLayout)]
pub struct GameMemory {
    /// Survives reloads; zeroed once at start-up. The game keeps all its state here.
    pub permanent_storage: *mut u8,
    pub permanent_storage_size: u64,
    /// Scratch the game may overwrite at any time.
    pub transient_storage: *mut u8,
    pub transient_storage_size: u64,
    /// Assets the platform loaded once at start-up (samples live in a platform arena).
    pub assets: GameAssets,
    /// Audio-sync markers the platform records each frame, for the game's debug display.
    pub audio_sync: *const AudioSyncRing,
    /// Set by the platform on the first call after a (re)load; the game clears nothing.
    pub reloaded: u32,
    /// Written by the game: the largest number of bytes its arenas have ever used.
    pub game_arena_high_water: u64,
    /// Written by the game's export wrapper when it catches a panic (UTF-8, not terminated).
    pub panic_message: [u8; 256],
    pub panic_message_len: u32,
}

/// A sound the platform decoded at start-up, lent read-only as structure-of-arrays.
#[repr(C)]
#[derive(Debug, Clone, Copy, StateLayout)]
pub struct GameSample {
    pub left: *const f32,
    pub right: *const f32,
    pub frame_count: u32,
    pub samples_per_second: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, StateLayout)]
pub struct GameAssets {
    /// The demo's short loop (`data/loop.wav`); `frame_count == 0` when it could not be loaded.
    pub loop_sample: GameSample,
}

/// One frame's audio-sync record: where the platform wrote and where the device was.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, StateLayout)]
pub struct AudioSyncMarker {
    /// Running sample index of the first frame written this frame.
    pub write_cursor: u64,
    /// Frames written this frame.
    pub frames_written: u32,
    /// Frames the device held queued (its delay) just before the write.
    pub queued_frames: u32,
    /// Running sample index the device is expected to play at the next frame boundary.
    pub expected_frame_boundary: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, StateLayout)]
pub struct AudioSyncRing {
    pub markers: [AudioSyncMarker; AUDIO_SYNC_MARKERS],
    /// Total markers ever pushed; the newest is at `(count - 1) % AUDIO_SYNC_MARKERS`.
    pub count: u64,
    /// The device's buffer size in frames (0 for the offline backend).
    pub device_buffer_frames: u32,
    pub samples_per_second: u32,
}

impl AudioSyncRing {
    pub const EMPTY: Self = Self {
        markers: [AudioSyncMarker { write_cursor: 0, frames_written: 0, queued_frames: 0, expected_frame_boundary: 0 };
            AUDIO_SYNC_MARKERS],
        count: 0,
        device_buffer_frames: 0,
        samples_per_second: 0,
    };

    pub fn push(&mut self, marker: AudioSyncMarker) {
        self.markers[(self.count % AUDIO_SYNC_MARKERS as u64) as usize] = marker;
        self.count += 1;
    }

    /// The stored markers, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &AudioSyncMarker> {
        let n = self.count.min(AUDIO_SYNC_MARKERS as u64);
        (self.count - n..self.count).map(|i| &self.markers[(i % AUDIO_SYNC_MARKERS as u64) as usize])
    }
}

/// A button as Handmade Hero keeps it: its state at the end of the frame and how many times it
/// changed during the frame, so a press and release inside one frame is not lost.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, StateLayout)]
pub struct GameButtonState {
    pub half_transition_count: u32,
    pub ended_down: u8,
}

impl GameButtonState {
    pub fn is_down(&self) -> bool {
        self.ended_down != 0
    }
    /// Pressed during this frame (went down at least once).
    pub fn was_pressed(&self) -> bool {
        self.half_transition_count > 1 || (self.half_transition_count == 1 && self.is_down())
    }
}

/// Button indices into `GameControllerInput::buttons`.
pub mod button {
    pub const MOVE_UP: usize = 0;
    pub const MOVE_DOWN: usize = 1;
    pub const MOVE_LEFT: usize = 2;
    pub const MOVE_RIGHT: usize = 3;
    pub const ACTION_UP: usize = 4;
    pub const ACTION_DOWN: usize = 5;
    pub const ACTION_LEFT: usize = 6;
    pub const ACTION_RIGHT: usize = 7;
    pub const LEFT_SHOULDER: usize = 8;
    pub const RIGHT_SHOULDER: usize = 9;
    pub const BACK: usize = 10;
    pub const START: usize = 11;
    pub const COUNT: usize = 12;
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, StateLayout)]
pub struct GameControllerInput {
    pub is_connected: u8,
    pub is_analog: u8,
    /// Left stick, -1..1, averaged over the frame.
    pub stick_average_x: f32,
    pub stick_average_y: f32,
    pub buttons: [GameButtonState; button::COUNT],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, StateLayout)]
pub struct GameInput {
    /// Seconds this frame stands for (1 / fps).
    pub dt_for_frame: f32,
    pub frame_index: u64,
    /// 0 is the keyboard; 1.. are gamepads.
    pub controllers: [GameControllerInput; MAX_CONTROLLERS],
    /// Letter keys `a`..`z` of the keyboard, for the game's own shortcuts.
    pub letters: [GameButtonState; 26],
}

impl GameInput {
    pub fn letter(&self, c: char) -> GameButtonState {
        let i = (c.to_ascii_lowercase() as usize).wrapping_sub('a' as usize);
        self.letters.get(i).copied().unwrap_or_default()
    }
}

/// The platform's offscreen bitmap: 32-bit pixels, memory order B, G, R, X.
#[repr(C)]
#[derive(Debug, StateLayout)]
pub struct GameOffscreenBuffer<'a> {
    /// Only `lend` sets these two: the pixels and how many were lent.
    memory: *mut u32,
    pixels_lent: u32,
    pub width: u32,
    pub height: u32,
    /// Pixels (not bytes) from one row to the next.
    pub pitch: u32,
    _pixels: PhantomData<&'a mut [u32]>,
}

impl<'a> GameOffscreenBuffer<'a> {
    /// Lends `pixels` (row-major, `width * height`) as an offscreen buffer.
    pub fn lend(pixels: &'a mut [u32], width: u32, height: u32) -> Self {
        assert_eq!(pixels.len(), width as usize * height as usize, "bitmap size");
        assert!(pixels.len() <= u32::MAX as usize, "bitmap too large");
        Self {
            memory: pixels.as_mut_ptr(),
            pixels_lent: pixels.len() as u32,
            width,
            height,
            pitch: width,
            _pixels: PhantomData,
        }
    }

    /// The lent pixels (at most what was lent, whatever `pitch` and `height` say).
    pub fn pixels_mut(&mut self) -> &mut [u32] {
        let n = (self.pitch as usize).saturating_mul(self.height as usize).min(self.pixels_lent as usize);
        // SAFETY: `memory` and `pixels_lent` are private and set only by `lend` from a live
        // `&'a mut [u32]` of `pixels_lent` pixels, borrowed for as long as this buffer lives.
        unsafe { core::slice::from_raw_parts_mut(self.memory, n) }
    }
}

/// The platform's stack sample buffer, lent to the game as structure-of-arrays for one call.
/// "This has to be a very fast function": no allocation, no locks, no system calls.
#[repr(C)]
#[derive(Debug, StateLayout)]
pub struct GameSoundOutputBuffer<'a> {
    pub samples_per_second: u32,
    /// Frames to fill in each channel (the platform may lend more room than it asks for).
    pub sample_count: u32,
    /// Only `lend` sets these three: the channels and how many frames each holds.
    left: *mut f32,
    right: *mut f32,
    frames_lent: u32,
    /// Index of the first frame of this buffer in the whole stream.
    pub running_sample_index: u64,
    _channels: PhantomData<&'a mut [f32]>,
}

impl<'a> GameSoundOutputBuffer<'a> {
    /// Lends two equally long channel slices; `sample_count` is their length.
    pub fn lend(rate: u32, running_sample_index: u64, left: &'a mut [f32], right: &'a mut [f32]) -> Self {
        assert_eq!(left.len(), right.len(), "channels differ in length");
        assert!(left.len() <= MAX_SOUND_FRAMES, "sound buffer longer than MAX_SOUND_FRAMES");
        Self {
            samples_per_second: rate,
            sample_count: left.len() as u32,
            left: left.as_mut_ptr(),
            right: right.as_mut_ptr(),
            frames_lent: left.len() as u32,
            running_sample_index,
            _channels: PhantomData,
        }
    }

    /// The two channels, each `sample_count` long (never more than was lent).
    pub fn channels_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        let n = (self.sample_count as usize).min(self.frames_lent as usize);
        // SAFETY: the pointers and `frames_lent` are private and set only by `lend`, from two
        // `&'a mut` slices of `frames_lent` frames; two live `&mut` slices never overlap, and
        // they stay borrowed for as long as this buffer lives.
        unsafe { (core::slice::from_raw_parts_mut(self.left, n), core::slice::from_raw_parts_mut(self.right, n)) }
    }
}

// ------------------------------------------------------------------------------------------
// Services the game provides to the platform
// ------------------------------------------------------------------------------------------

/// What every export returns. A panic inside the game is caught there and reported, never
/// unwound across `extern "C"` (which would abort the process).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, StateLayout)]
pub enum GameStatus {
    Ok = 0,
    /// The call panicked; `GameMemory::panic_message` says why.
    Panicked = 1,
    /// The call was given memory it cannot use (too small, null).
    BadMemory = 2,
    /// `game_migrate_state` does not know the old layout; the platform re-initialises.
    CannotMigrate = 3,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, StateLayout)]
pub struct GameApiInfo {
    pub version: u32,
    pub layout_hash: u64,
}

pub type GameApiVersionFn = unsafe extern "C" fn() -> GameApiInfo;
pub type GameUpdateAndRenderFn =
    for<'a> unsafe extern "C" fn(*mut GameMemory, *const GameInput, *mut GameOffscreenBuffer<'a>) -> GameStatus;
/// This has to be a very fast function.
pub type GameOutputSoundFn =
    for<'a> unsafe extern "C" fn(*mut GameMemory, *mut GameSoundOutputBuffer<'a>) -> GameStatus;

pub const SYMBOL_API_VERSION: &[u8] = b"game_api_version\0";
pub const SYMBOL_UPDATE_AND_RENDER: &[u8] = b"game_update_and_render\0";
pub const SYMBOL_OUTPUT_SOUND: &[u8] = b"game_output_sound\0";

/// What the game keeps at the start of permanent storage, summed up: its `StateLayout`
/// fingerprint, size and alignment. A new library whose layout differs cannot read the old
/// state as it is; the platform then asks it to migrate, or re-initialises.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, StateLayout)]
pub struct GameStateLayout {
    pub fingerprint: u64,
    pub size: u64,
    pub align: u64,
}

impl GameStateLayout {
    pub const fn of<T: StateLayout>() -> Self {
        Self { fingerprint: T::FINGERPRINT, size: size_of::<T>() as u64, align: align_of::<T>() as u64 }
    }
}

/// Optional export: the layout of the game's state. Without it the platform cannot tell a
/// changed state from an unchanged one.
pub type GameStateLayoutFn = unsafe extern "C" fn() -> GameStateLayout;
pub const SYMBOL_STATE_LAYOUT: &[u8] = b"game_state_layout\0";

/// Optional: migrate the old state (a read-only copy of the old permanent storage, as the
/// previous library left it) into `memory.permanent_storage` for the new layout. Returns
/// GameStatus::Ok when migrated, GameStatus::CannotMigrate when it does not know `old_layout`
/// (the platform then re-initialises: zeroes permanent storage and sets `reloaded`).
/// Called only when the fingerprint changed and the new library exports it, inside `guard`
/// like every export. On entry permanent storage still holds the old bytes; the copy is
/// aligned to at least 64 bytes, and `old_state` reads it.
pub type GameMigrateStateFn = unsafe extern "C" fn(
    memory: *mut GameMemory,
    old_storage: *const u8,
    old_storage_size: u64,
    old_layout: GameStateLayout,
) -> GameStatus;
pub const SYMBOL_MIGRATE_STATE: &[u8] = b"game_migrate_state\0";

/// For `game_migrate_state`: the old state as an `Old`, if `old_layout` is `Old`'s layout and
/// the copy is non-null, long enough and aligned for it. `None` means "answer CannotMigrate".
///
/// # Safety
/// `old_storage` must be null or valid for reads of `old_storage_size` bytes, unchanged for
/// `'o`, and, when `old_layout` is `Old`'s, hold a valid `Old`: what a library whose state
/// type had `old_layout` wrote there. Storage that library never initialised (all zero) is not
/// a valid `Old` if `Old` holds references: check the game's own marker first.
pub unsafe fn old_state<'o, Old: StateLayout>(
    old_storage: *const u8,
    old_storage_size: u64,
    old_layout: GameStateLayout,
) -> Option<&'o Old> {
    let fits = old_storage_size >= size_of::<Old>() as u64;
    let ptr = old_storage.cast::<Old>();
    if old_layout != GameStateLayout::of::<Old>() || !fits || ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: non-null, aligned, `size_of::<Old>()` readable bytes unchanged for `'o`, holding
    // a valid `Old` (the caller's promise for a matching layout, checked just above).
    Some(unsafe { &*ptr })
}

/// Stubs the platform calls while no game is loaded: a blank frame and silence.
///
/// # Safety
/// Touches none of its arguments, so any pointers are accepted.
pub unsafe extern "C" fn game_update_and_render_stub(
    _memory: *mut GameMemory,
    _input: *const GameInput,
    _buffer: *mut GameOffscreenBuffer<'_>,
) -> GameStatus {
    GameStatus::Ok
}

/// # Safety
/// `sound` must be null or point at a buffer built by `GameSoundOutputBuffer::lend`.
pub unsafe extern "C" fn game_output_sound_stub(
    _memory: *mut GameMemory,
    sound: *mut GameSoundOutputBuffer<'_>,
) -> GameStatus {
    // SAFETY: the caller guarantees `sound` is null or valid and unaliased for this call.
    if let Some(sound) = unsafe { sound.as_mut() } {
        let (l, r) = sound.channels_mut();
        l.fill(0.0);
        r.fill(0.0);
    }
    GameStatus::Ok
}

/// Runs one export body, turning a panic into `GameStatus::Panicked` with its message copied
/// into `memory.panic_message`. Used by every export of the game.
pub fn guard(memory: &mut GameMemory, body: impl FnOnce(&mut GameMemory) -> GameStatus) -> GameStatus {
    let memory_ptr: *mut GameMemory = memory;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `memory_ptr` comes from the `&mut` above and is the only live access to it
        // inside the closure.
        body(unsafe { &mut *memory_ptr })
    }));
    match result {
        Ok(status) => status,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic with a non-text payload");
            let n = floor_char_boundary(text, memory.panic_message.len());
            memory.panic_message[..n].copy_from_slice(&text.as_bytes()[..n]);
            memory.panic_message_len = n as u32;
            GameStatus::Panicked
        }
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut n = text.len().min(max);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    n
}

impl GameMemory {
    /// The last panic message the game reported.
    pub fn panic_text(&self) -> &str {
        let n = (self.panic_message_len as usize).min(self.panic_message.len());
        core::str::from_utf8(&self.panic_message[..n]).unwrap_or("<invalid utf-8>")
    }
}

// ------------------------------------------------------------------------------------------
// The layout hash: both sides compute it from the same source; a game built against another
// contract (a field added, moved, renamed or retyped anywhere) reports a different value and
// is refused. Every type's part is derived (`layout.rs`); only this list of types is by hand.
// ------------------------------------------------------------------------------------------

pub const LAYOUT_HASH: u64 = Fnv::new()
    .u64(GAME_API_VERSION as u64)
    .usize(MAX_SOUND_FRAMES)
    .usize(MAX_CONTROLLERS)
    .usize(AUDIO_SYNC_MARKERS)
    .usize(button::COUNT)
    .u64(GameMemory::FINGERPRINT)
    .u64(GameSample::FINGERPRINT)
    .u64(GameAssets::FINGERPRINT)
    .u64(AudioSyncMarker::FINGERPRINT)
    .u64(AudioSyncRing::FINGERPRINT)
    .u64(GameButtonState::FINGERPRINT)
    .u64(GameControllerInput::FINGERPRINT)
    .u64(GameInput::FINGERPRINT)
    .u64(<GameOffscreenBuffer<'static>>::FINGERPRINT)
    .u64(<GameSoundOutputBuffer<'static>>::FINGERPRINT)
    .u64(GameStatus::FINGERPRINT)
    .u64(GameApiInfo::FINGERPRINT)
    .u64(GameStateLayout::FINGERPRINT)
    .finish();

/// What a game built against this contract reports from `game_api_version`.
pub const GAME_API_INFO: GameApiInfo = GameApiInfo { version: GAME_API_VERSION, layout_hash: LAYOUT_HASH };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_sound_is_silence() {
        let (mut l, mut r) = ([1.0f32; 16], [1.0f32; 16]);
        let mut sound = GameSoundOutputBuffer::lend(48_000, 0, &mut l, &mut r);
        // SAFETY: `sound` was built by `lend` from live slices.
        let status = unsafe { game_output_sound_stub(core::ptr::null_mut(), &mut sound) };
        assert_eq!(status, GameStatus::Ok);
        assert!(l.iter().chain(r.iter()).all(|&s| s == 0.0));
    }

    #[test]
    fn button_pressed_counts_half_transitions() {
        let tapped = GameButtonState { half_transition_count: 2, ended_down: 0 };
        let held = GameButtonState { half_transition_count: 0, ended_down: 1 };
        assert!(tapped.was_pressed() && !held.was_pressed() && held.is_down());
    }

    #[test]
    fn sync_ring_keeps_newest_markers_in_order() {
        let mut ring = AudioSyncRing::EMPTY;
        for i in 0..(AUDIO_SYNC_MARKERS as u64 + 5) {
            ring.push(AudioSyncMarker { write_cursor: i, ..Default::default() });
        }
        let cursors: Vec<u64> = ring.iter().map(|m| m.write_cursor).collect();
        assert_eq!(cursors.len(), AUDIO_SYNC_MARKERS);
        assert_eq!(cursors[0], 5);
        assert!(cursors.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn old_state_needs_the_same_layout_enough_bytes_and_alignment() {
        #[derive(StateLayout)]
        struct Old {
            marker: u64,
            count: u32,
        }
        let storage = [7u64, 3];
        let (ptr, len) = (storage.as_ptr().cast::<u8>(), 16);
        let layout = GameStateLayout::of::<Old>();
        // SAFETY: `storage` is 16 readable bytes holding a valid `Old` (any bits are) for the
        // whole test.
        let read = |ptr, len, layout| unsafe { old_state::<Old>(ptr, len, layout) };
        let old = read(ptr, len, layout).expect("same layout");
        assert_eq!((old.marker, old.count), (7, 3));
        assert!(read(ptr, len, GameStateLayout { fingerprint: 1, ..layout }).is_none(), "other fingerprint");
        assert!(read(ptr, len, GameStateLayout { size: 24, ..layout }).is_none(), "other size");
        assert!(read(ptr, 15, layout).is_none(), "too short");
        assert!(read(ptr.wrapping_add(4), 12, layout).is_none(), "misaligned");
        assert!(read(core::ptr::null(), len, layout).is_none());
    }

    #[test]
    fn the_derive_mixes_name_size_align_then_each_field_name_offset_and_fingerprint() {
        let by_hand = Fnv::new()
            .item("GameButtonState", 8, 4)
            .field("half_transition_count", 0, u32::FINGERPRINT)
            .field("ended_down", 4, u8::FINGERPRINT)
            .finish();
        assert_eq!(GameButtonState::FINGERPRINT, by_hand);
        let status = Fnv::new().item("GameStatus", 4, 4).variant("Ok", 0).variant("Panicked", 1);
        let status = status.variant("BadMemory", 2).variant("CannotMigrate", 3).finish();
        assert_eq!(GameStatus::FINGERPRINT, status);
    }

    #[test]
    fn panic_message_is_truncated_on_a_char_boundary() {
        assert_eq!(floor_char_boundary("aé", 2), 1);
        assert_eq!(floor_char_boundary("abc", 10), 3);
    }
}
