//! Lesson L3.1, pull against push: the same 50 ms stall where the sound is made, once in a
//! loop that pushes on its own clock and once in a loop the device pulls (it waits in
//! `snd_pcm_wait` and writes a period when asked), against a short and a long buffer on the real
//! `default` device. Both underrun when the stall is longer than the queued audio; neither
//! style "adapts" to a stall.
//!
//! Run with: cargo run --release --example l3_1_stall

mod common;

use common::*;

fn main() {
    header("L3.1", "a 50 ms stall, pushed and pulled");
    let device = "default";
    let stall = 50;
    let run_ms = pick(1500, 600);
    println!(
        "{:<5} {:>9} {:>10} {:>8} {:>24} {:>6}",
        "style", "buffer ms", "granted ms", "stall ms", "right after the stall", "EPIPE"
    );
    let mut cells = Vec::new();
    for buffer_ms in [20u32, 100] {
        for pull in [false, true] {
            let o = stall_run(device, buffer_ms, stall, run_ms, pull);
            let style = if pull { "pull" } else { "push" };
            println!(
                "{style:<5} {buffer_ms:>9} {:>10.1} {stall:>8} {:>24} {:>6}",
                o.granted.ms(o.granted.buffer),
                after_stall_text(&o),
                o.epipe
            );
            cells.push((style, o.granted.ms(o.granted.buffer), o.epipe));
        }
    }
    let short: Vec<String> = cells.iter().filter(|c| c.1 < stall as f64).map(|c| format!("{} {}", c.0, c.2)).collect();
    let long: Vec<String> = cells.iter().filter(|c| c.1 >= stall as f64).map(|c| format!("{} {}", c.0, c.2)).collect();
    let same = cells.chunks(2).all(|pair| (pair[0].2 > 0) == (pair[1].2 > 0));
    verdict(
        "a 50 ms stall underruns the push loop, while the pull loop adapts",
        &format!(
            "underruns (EPIPE) with a buffer shorter than the stall: {}; with a longer one: {}",
            short.join(", "),
            long.join(", ")
        ),
        &if same {
            "in this run push and pull underran in the same cases: the stall held up the code that makes the sound, and the device played out what was queued either way; how the loop is woken does not change how much audio is queued".to_string()
        } else {
            "in this run push and pull differed for one buffer size: the table shows which; compare the avail/delay right after the stall".to_string()
        },
    );
}
