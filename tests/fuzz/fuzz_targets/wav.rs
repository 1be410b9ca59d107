//! Fuzz target: the WAV loader (`handmade::assets::decode_wav`) on arbitrary bytes, into a
//! 4 MiB arena so a huge claimed length must fail on the arena, never allocate or overrun.
#![no_main]

use std::sync::Mutex;

use handmade_api::MemoryArena;
use libfuzzer_sys::fuzz_target;

const ARENA_BYTES: usize = 4 << 20;

/// One backing buffer for every run: reallocating 4 MiB per input would dominate the time.
static BACKING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fuzz_target!(|data: &[u8]| {
    let mut backing = BACKING.lock().unwrap_or_else(|e| e.into_inner());
    backing.resize(ARENA_BYTES, 0);
    let mut arena = MemoryArena::new("fuzz", &mut backing[..]);
    match handmade::decode_wav(data, &mut arena) {
        Ok(sample) => {
            let frames = sample.frame_count as usize;
            assert!((1..=handmade::MAX_SAMPLE_FRAMES as usize).contains(&frames));
            assert!(arena.used() >= 2 * frames * 4, "both channels live in the arena");
            // SAFETY: `decode_wav` pushed `frame_count` floats per channel into `arena`, which
            // is still borrowed here; reading the last frame checks the pointers are in range.
            let (l, r) = unsafe { (*sample.left.add(frames - 1), *sample.right.add(frames - 1)) };
            std::hint::black_box((l, r));
        }
        Err(reason) => assert!(!reason.contains('\n'), "one line: {reason}"),
    }
});
