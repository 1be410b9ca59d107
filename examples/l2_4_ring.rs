//! Lesson L2.4, the ring buffer: what buffer and period the real `default` device granted,
//! avail and delay after each write while it fills and plays, then a 100 ms sleep past the
//! queued audio: the next write fails with EPIPE (an underrun) and `prepare` recovers. Also the
//! course's Ex4 `int16_t[480]` write done correctly: a slice knows its frame count.
//!
//! Run with: cargo run --release --example l2_4_ring

mod common;

use std::time::{Duration, Instant};

use common::*;

fn main() {
    header("L2.4", "the device's ring buffer: granted sizes, avail/delay, EPIPE and recovery");
    let device = "default";
    let (pcm, g) = open_or_exit(device, 48_000, 50_000, None);
    let io = pcm.io_i16().expect("S16 I/O");
    println!(
        "requested 50 ms buffer, 12.5 ms periods at 48000 Hz -> granted buffer {} frames ({:.1} ms), period {} frames ({:.1} ms), rate {}, start_threshold {}",
        g.buffer,
        g.ms(g.buffer),
        g.period,
        g.ms(g.period),
        g.rate,
        g.start_threshold
    );
    let mut tone = Tone::new(g.rate);
    let mut chunk = vec![0i16; 2 * g.period as usize];
    let writes = pick(60, 24);
    println!("{:>5} {:>8} {:>7} {:>7} {:>9} {:>10}", "write", "t ms", "avail", "delay", "a+d-buf", "state");
    let start = Instant::now();
    let mut trace = Vec::new();
    for n in 0..writes {
        if let Err(e) = io.writei(tone.fill(&mut chunk)) {
            println!("{n:>5} write: {}", errno_name(recover(&pcm, e)));
            continue;
        }
        let t = start.elapsed().as_secs_f64() * 1e3;
        match pcm.avail_delay() {
            Ok((avail, delay)) => {
                trace.push((t, avail, delay));
                println!("{n:>5} {t:>8.1} {avail:>7} {delay:>7} {:>9} {:>10?}", avail + delay - g.buffer, pcm.state());
            }
            // A sound server's plugin may have no timing to report yet (before its stream runs).
            Err(e) => {
                println!("{n:>5} {t:>8.1} {:>7} {:>7} {:>9} {:>10?}", "-", errno_name(e.errno()), "-", pcm.state())
            }
        }
    }

    // Sleep past what is queued: the device runs dry while nobody writes.
    let queued = pcm.delay().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(100) + Duration::from_secs_f64(g.ms(queued) / 1e3));
    let state_after_sleep = pcm.state();
    let result = io.writei(tone.fill(&mut chunk));
    let errno = result.as_ref().err().map(|e| e.errno());
    println!(
        "after sleeping 100 ms past {queued} queued frames: state {state_after_sleep:?}, write -> {}",
        match &result {
            Ok(n) => format!("{n} frames"),
            Err(e) => errno_name(e.errno()),
        }
    );
    let recover = Instant::now();
    if let Err(e) = &result {
        pcm.try_recover(alsa::Error::new("snd_pcm_writei", -e.errno()), true).expect("recover");
    }
    // Refill until it plays again (start_threshold frames must be queued first).
    let mut refill_writes = 0;
    while pcm.state() != alsa::pcm::State::Running && refill_writes < 100 {
        io.writei(tone.fill(&mut chunk)).expect("write after recovery");
        refill_writes += 1;
    }
    let recovered_ms = recover.elapsed().as_secs_f64() * 1e3;
    println!(
        "recovered (snd_pcm_recover, i.e. prepare) and wrote {refill_writes} period(s) before the state was Running again, in {recovered_ms:.2} ms"
    );
    verdict(
        "sleep 100 ms with the buffer unfed and the next write gets EPIPE; recover and go on",
        &format!(
            "state before the write {state_after_sleep:?}; write -> {}; recover + {refill_writes} writes to Running again: {recovered_ms:.2} ms, then state {:?}",
            errno.map_or("no error".to_string(), errno_name),
            pcm.state()
        ),
        &match errno {
            Some(libc::EPIPE) => format!(
                "EPIPE on a playback stream is an underrun: the write found the queue run dry{}; recover (prepare) returned it to PREPARED, and it ran again only after {refill_writes} writes reached start_threshold ({} frames)",
                if state_after_sleep == alsa::pcm::State::Running { " although state() still said Running just before it (state() alone did not show the underrun here)" } else { "" },
                g.start_threshold
            ),
            Some(e) => format!("this device reported {} instead of EPIPE: the lesson prints what it got", errno_name(e)),
            None => "this device did not report the underrun on the write (a sound server may pad with silence): the lesson prints what it got".to_string(),
        },
    );

    // Ex4: the course passes 480 as the frame count of an int16_t[480] stereo buffer.
    let buffer = [0i16; 480];
    let frames = pcm.bytes_to_frames(std::mem::size_of_val(&buffer) as isize);
    let written = io.writei(&buffer).expect("write 480 samples");
    verdict(
        "Ex4: snd_pcm_writei(pcm, buffer, 480) with int16_t buffer[480]",
        &format!(
            "480 i16 = {} bytes = {frames} stereo frames; writei of the slice wrote {written} frames; the course's count 480 would read 480 x 4 = 1920 bytes, {} past the end",
            std::mem::size_of_val(&buffer),
            1920 - std::mem::size_of_val(&buffer)
        ),
        "the frame count is the slice's length / channels (the crate computes it), so it cannot over-read; in C the count is frames, not samples: sizeof(buffer) / (2 channels x 2 bytes)",
    );
    let over: Vec<i64> = trace.iter().skip(5).map(|&(_, a, d)| a + d - g.buffer).collect();
    if let (Some(lo), Some(hi)) = (over.iter().min(), over.iter().max()) {
        println!(
            "while running, avail + delay exceeded the buffer by {lo}..{hi} frames ({:.1}..{:.1} ms): delay counts audio queued beyond this ring too (L3.2 measures it)",
            g.ms(*lo),
            g.ms(*hi)
        );
    }
    let _ = pcm.drop();
    Plot::new()
        .series(trace.iter().map(|&(t, a, _)| (t, a as f64)))
        .series(trace.iter().map(|&(t, _, d)| (t, d as f64)))
        .series(trace.iter().map(|&(t, _, _)| (t, g.buffer as f64)))
        .save("l2_4_ring", "x: ms since the first write, y: frames; red: avail, blue: delay, green: buffer size");
}
