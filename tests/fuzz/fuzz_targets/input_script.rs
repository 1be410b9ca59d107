//! Fuzz target: the `--input-script` parser (`InputScript::parse`) on arbitrary text, then the
//! per-frame cursor over what it accepted: every event is handed out exactly once.
#![no_main]

use handmade::InputScript;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match InputScript::parse(text) {
        Ok(mut script) => {
            let total = script.len();
            let mut frames: Vec<u64> = Vec::new();
            for line in text.lines() {
                if let Some(Ok(frame)) = line.split_whitespace().next().map(str::parse::<u64>) {
                    frames.push(frame);
                }
            }
            frames.sort_unstable();
            frames.dedup();
            let handed_out: usize = frames.iter().map(|&f| script.events_for(f).len()).sum();
            assert_eq!(handed_out, total, "each event once, in its frame");
        }
        Err((line, message)) => {
            assert!(line >= 1 && line <= text.lines().count(), "line {line} names a real line");
            assert!(!message.is_empty());
        }
    }
});
