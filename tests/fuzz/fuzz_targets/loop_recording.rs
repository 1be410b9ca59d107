//! Fuzz target: the live-loop recording reader. Every input goes through `check_recording`;
//! one the checker accepts is then opened for playback (`LiveLoop::open_recording`) and played
//! for a few loops, so "accepted" must also mean "safe to replay".
//!
//! Input: one mode byte, then the file. Mode bit 0 writes this build's layout hash into the
//! header and bit 1 recomputes the checksum, so mutations reach the checks behind them; with
//! mode 0 the file is checked exactly as given.
#![no_main]

use handmade::live_loop::{check_recording, LiveLoop};
use handmade_api::{GameInput, GameMemory, LAYOUT_HASH};
use libfuzzer_sys::fuzz_target;

/// Permanent storage the recording must fit (the seeds' snapshots are smaller).
const PERMANENT_BYTES: usize = 64 << 10;
const SNAPSHOT_OFFSET: usize = 4096;
const INPUT_RECORD_BYTES: usize = handmade::live_loop::INPUT_RECORD_BYTES;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let mut file = file.to_vec();
    if mode & 1 != 0 && file.len() >= 16 {
        file[8..16].copy_from_slice(&LAYOUT_HASH.to_le_bytes());
    }
    if mode & 2 != 0 {
        fix_checksum(&mut file);
    }
    match check_recording(&file, PERMANENT_BYTES) {
        Ok(()) => play(&file),
        Err(reason) => assert!(!reason.contains('\n'), "one line: {reason}"),
    }
});

fn field(file: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(file[8 + i * 8..16 + i * 8].try_into().expect("8 bytes"))
}

/// Same FNV-1a over the snapshot and the recorded inputs as live_loop.rs, where they fit.
fn fix_checksum(file: &mut [u8]) {
    if file.len() < 72 {
        return;
    }
    let (snapshot_bytes, frames) = (field(file, 1) as usize, field(file, 4) as usize);
    let Some(inputs) = snapshot_bytes.checked_next_multiple_of(4096).and_then(|s| s.checked_add(SNAPSHOT_OFFSET))
    else {
        return;
    };
    let (Some(snapshot_end), Some(inputs_end)) = (
        SNAPSHOT_OFFSET.checked_add(snapshot_bytes),
        frames.checked_mul(INPUT_RECORD_BYTES).and_then(|n| n.checked_add(inputs)),
    ) else {
        return;
    };
    if snapshot_end > file.len() || inputs_end > file.len() {
        return;
    }
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in file[SNAPSHOT_OFFSET..snapshot_end].iter().chain(&file[inputs..inputs_end]) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    file[56..64].copy_from_slice(&hash.to_le_bytes());
}

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
