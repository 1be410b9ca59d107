//! Lesson L5.2, buffer architecture: how many bytes and milliseconds one sound buffer holds for
//! common rates, frame rates and formats, and what the device write's copy (interleave and
//! convert to i16) costs for one 60 fps frame.
//!
//! Run with: cargo run --release --example l5_2_buffers

mod common;

use std::hint::black_box;

use common::*;
use handmade::interleave_i16;

fn main() {
    header("L5.2", "sound buffer sizes and the copy cost of the device write");
    println!("{:>6} {:>4} {:>7} {:>4} {:>7} {:>8} {:>8}", "rate", "fps", "frames", "ch", "format", "bytes", "ms");
    for (rate, fps) in [(48_000u32, 60u32), (48_000, 30), (44_100, 60), (96_000, 60)] {
        let frames = rate / fps;
        for (channels, format, bytes_per_sample) in [(2u32, "i16", 2u32), (2, "f32", 4), (1, "i16", 2)] {
            let bytes = frames * channels * bytes_per_sample;
            let ms = frames as f64 * 1e3 / rate as f64;
            println!("{rate:>6} {fps:>4} {frames:>7} {channels:>4} {format:>7} {bytes:>8} {ms:>8.2}");
        }
    }
    let bytes_800 = 800 * 2 * std::mem::size_of::<i16>();
    verdict(
        "the course's Ex3 prints 1920 bytes for 800 stereo i16 frames",
        &format!("800 frames x 2 channels x 2 bytes = {bytes_800} bytes, {:.2} ms at 48 kHz", 800.0 * 1e3 / 48_000.0),
        "1920 bytes is 480 stereo i16 frames (10 ms at 48 kHz); the size is frames x channels x bytes per sample",
    );

    // The copy cost of the device write: convert the game's SoA f32 channels to interleaved i16.
    let left: Vec<f32> = (0..800).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
    let right: Vec<f32> = left.iter().map(|s| -s).collect();
    let mut out = vec![0i16; 1600];
    let mut bytes = vec![0u8; bytes_800];
    let src = vec![7u8; bytes_800];
    let samples = pick(20_000, 2_000);
    let convert = time_ns(samples, 1, || {
        interleave_i16(black_box(&left), black_box(&right), black_box(&mut out));
    });
    let memcpy = time_ns(samples, 1, || {
        black_box(&mut bytes).copy_from_slice(black_box(&src));
    });
    println!("clock overhead per sample: ~{:.0} ns (included below)", clock_overhead_ns());
    let c = report("interleave+convert 800 frames", &convert, "ns");
    let m = report("memcpy 3200 bytes", &memcpy, "ns");
    verdict(
        "the copy into the device buffer is negligible next to a 16.7 ms frame",
        &format!(
            "convert p50 {:.2} us ({:.4}% of 16.7 ms), p99 {:.2} us; a plain 3200-byte memcpy p50 {:.2} us",
            c.p50 / 1e3,
            c.p50 / 16_666_667.0 * 100.0,
            c.p99 / 1e3,
            m.p50 / 1e3
        ),
        &format!(
            "true at p50 ({:.1} us of 16 667 us); the max ({:.0} us) is the thread being preempted or interrupted, not the copy",
            c.p50 / 1e3,
            c.max / 1e3
        ),
    );
    percentile_plot(
        "l5_2_buffers",
        &[("interleave+convert", &convert), ("memcpy 3200 B", &memcpy)],
        "ns per 800-frame buffer",
    );
}
