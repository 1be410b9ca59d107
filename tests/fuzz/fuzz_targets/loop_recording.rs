//! Fuzz target: the live-loop recording reader. Every input goes through `check_recording`;
//! one the checker accepts is then opened for playback (`LiveLoop::open_recording`) and played
//! for a few loops, so "accepted" must also mean "safe to replay".
//!
//! Input: one mode byte, then the file. Mode bit 0 writes this build's layout hash into the
//! header and bit 1 recomputes the checksum, so mutations reach the checks behind them; with
//! mode 0 the file is checked exactly as given.
#![no_main]

use handmade::loop_file::{check_recording, reseal_checksum, stamp_layout_hash};
use handmade::LiveLoop;
use handmade_api::{GameInput, GameMemory};
use libfuzzer_sys::fuzz_target;

/// Permanent storage the recording must fit (the corpus files' snapshots are smaller).
const PERMANENT_BYTES: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let mut file = file.to_vec();
    if mode & 1 != 0 {
        stamp_layout_hash(&mut file);
    }
    if mode & 2 != 0 {
        reseal_checksum(&mut file);
    }
    match check_recording(&file, PERMANENT_BYTES) {
        Ok(()) => play(&file),
        Err(reason) => assert!(!reason.contains('\n'), "one line: {reason}"),
    }
});

/// Opens an accepted recording the way `--play-loop` does and replays it twice over.
fn play(file: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.hml");
    std::fs::write(&path, file).expect("write the recording");
    let mut live = LiveLoop::open_recording(&path, 0, PERMANENT_BYTES, None).expect("accepted by check_recording");
    let mut storage = vec![0u8; PERMANENT_BYTES];
    // SAFETY: `GameMemory` is plain data (pointers, sizes, bytes); all-zero is a valid value.
    let mut memory: GameMemory = unsafe { std::mem::zeroed() };
    memory.permanent_storage = storage.as_mut_ptr();
    memory.permanent_storage_size = storage.len() as u64;
    let frames = live.recorded_frames().min(64) * 2 + 1;
    for frame in 0..frames {
        let mut input = GameInput { frame_index: frame, ..Default::default() };
        live.begin_frame(&mut input, &memory);
        assert_eq!(input.frame_index, frame, "the frame counter is the platform's, not the file's");
    }
}
