//! Lesson L2.3, ALSA initialisation: a device/format/rate matrix of what was requested against
//! what was granted, and the open+configure time of the real `default` device as p50/p99/max.
//! The course prints one init time (5.23 + 12.45 = 17.68 ms); here each figure is a
//! distribution, and 999999 Hz asked for exactly gives EINVAL.
//!
//! Run with: cargo run --release --example l2_3_init

mod common;

use std::time::Instant;

use alsa::pcm::{Access, Format, HwParams};
use alsa::{Direction, ValueOr, PCM};
use common::*;

/// One row of the matrix: opens `device`, asks for `format`, then each rate exactly
/// (`test_rate`) and, where that fails, nearest (`set_rate_near`). Each cell is `ok`, or the
/// exact request's errno and the rate granted instead; an open or format failure fills the row.
fn row(device: &str, format: Format, rates: &[u32]) -> Result<Vec<String>, String> {
    let pcm = PCM::new(device, Direction::Playback, false).map_err(|e| format!("open: {}", errno_name(e.errno())))?;
    let hw = HwParams::any(&pcm).map_err(|e| format!("hw_params_any: {}", errno_name(e.errno())))?;
    let _ = hw.set_access(Access::RWInterleaved);
    let _ = hw.set_channels(2);
    hw.set_format(format).map_err(|e| format!("format: {}", errno_name(e.errno())))?;
    Ok(rates
        .iter()
        .map(|&rate| match hw.test_rate(rate) {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                // A fresh parameter space per request: set_rate_near narrows the one it is given.
                let near = HwParams::any(&pcm).and_then(|h| h.set_rate_near(rate, ValueOr::Nearest));
                let near = near.map_or_else(|e| errno_name(e.errno()), |r| r.to_string());
                format!("{}->{near}", errno_name(e.errno()))
            }
        })
        .collect())
}

/// ALSA's name for what `device` resolves to (the PCM info's id and name).
fn resolves_to(pcm: &PCM) -> String {
    pcm.info().map_or_else(
        |e| format!("info: {}", errno_name(e.errno())),
        |i| format!("{} / {}", i.get_id().unwrap_or("?"), i.get_name().unwrap_or("?")),
    )
}

fn main() {
    header("L2.3", "ALSA init: requested against granted, and what opening costs");
    let device = "default";
    // The lesson is about the real device: stop in one line if it does not open.
    let (probe, _) = open_or_exit(device, 48_000, 50_000, None);
    println!("`{device}` resolves to: {}", resolves_to(&probe));
    drop(probe);

    let formats =
        [("S16_LE", Format::s16()), ("FLOAT_LE", Format::float()), ("S32_LE", Format::s32()), ("U8", Format::U8)];
    let rates = [8_000u32, 44_100, 48_000, 96_000, 999_999];
    println!("each rate asked exactly: ok, or the errno and then the rate set_rate_near granted instead");
    print!("{:<14} {:<9}", "device", "format");
    for rate in rates {
        print!(" {rate:>14}");
    }
    println!();
    // (device, formats that opened, of which 999999 Hz was refused exactly)
    let mut summary = Vec::new();
    for dev in [device, "plug:default", "hw:0,0"] {
        let (mut opened, mut refused) = (0, 0);
        for (name, format) in formats {
            match row(dev, format, &rates) {
                Ok(cells) => {
                    opened += 1;
                    refused += usize::from(cells[rates.len() - 1].starts_with("EINVAL"));
                    print!("{dev:<14} {name:<9}");
                    for c in cells {
                        print!(" {c:>14}");
                    }
                    println!();
                }
                Err(e) => {
                    println!("{dev:<14} {name:<9} {e}");
                    if e.starts_with("open") {
                        break; // the device itself is missing: one row says so
                    }
                }
            }
        }
        summary.push((dev, opened, refused));
    }

    let runs = pick(100, 15);
    let (mut open, mut configure) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let pcm = PCM::new(device, Direction::Playback, false).unwrap_or_else(|e| no_device(device, &e));
        let t1 = Instant::now();
        {
            let hw = HwParams::any(&pcm).unwrap_or_else(|e| no_device(device, &e));
            hw.set_access(Access::RWInterleaved).and_then(|_| hw.set_format(Format::s16())).expect("S16");
            hw.set_channels(2).expect("stereo");
            hw.set_rate_near(48_000, ValueOr::Nearest).expect("rate");
            hw.set_buffer_time_near(50_000, ValueOr::Nearest).expect("buffer");
            pcm.hw_params(&hw).unwrap_or_else(|e| no_device(device, &e));
        }
        pcm.prepare().expect("prepare");
        let t2 = Instant::now();
        open.push((t1 - t0).as_secs_f64() * 1e3);
        configure.push((t2 - t1).as_secs_f64() * 1e3);
    }
    let o = report("snd_pcm_open(default)", &open, "ms");
    let c = report("hw_params + prepare", &configure, "ms");
    let total: Vec<f64> = open.iter().zip(&configure).map(|(a, b)| a + b).collect();
    let t = report("open + configure", &total, "ms");
    verdict(
        "init takes 5.23 ms (open) + 12.45 ms (configure) = 17.68 ms",
        &format!(
            "open p50 {:.2} ms (p99 {:.2}, max {:.2}); configure p50 {:.2} ms (p99 {:.2}, max {:.2}); total p50 {:.2} ms, over {runs} opens of `{device}`",
            o.p50, o.p99, o.max, c.p50, c.p99, c.max, t.p50
        ),
        &format!(
            "{runs} opens each timed on their own ranged from {:.2} to {:.2} ms, so one timed open is one draw from this spread, not the init time",
            total.iter().copied().fold(f64::MAX, f64::min),
            t.max
        ),
    );
    let said: Vec<String> = summary
        .iter()
        .map(|(dev, opened, refused)| match opened {
            0 => format!("`{dev}` did not open"),
            _ => format!("`{dev}` refused it exactly for {refused} of {opened} formats"),
        })
        .collect();
    verdict(
        "asking for 999999 Hz gives EINVAL",
        &said.join("; "),
        &format!(
            "in this run an exact 999999 Hz failed with EINVAL only where the device's rate range ends below it (set_rate_near then granted the nearest rate, in the matrix){}",
            if summary.iter().any(|(_, opened, refused)| *opened > 0 && refused < opened) {
                "; a path that accepted it (plug: converts rates) never returns the error"
            } else {
                ""
            }
        ),
    );
    percentile_plot("l2_3_init", &[("snd_pcm_open", &open), ("hw_params + prepare", &configure)], "ms");
}
