//! Lesson L5.4, panning and volume: the linear pan law (L = 1 - p, R = p) against constant
//! power (L = cos(p pi/2), R = sin(p pi/2)), measured by rendering a tone at each position
//! and summing the two channels' power.
//!
//! Run with: cargo run --release --example l5_4_pan

mod common;

use std::f64::consts::{FRAC_PI_2, TAU};

use common::*;

fn linear(p: f64) -> (f64, f64) {
    (1.0 - p, p)
}

fn constant_power(p: f64) -> (f64, f64) {
    ((p * FRAC_PI_2).cos(), (p * FRAC_PI_2).sin())
}

/// Renders one second of a 440 Hz sine at amplitude 1 panned by `law` at `p` and returns the
/// summed mean-square power of both channels, relative to the unpanned tone's 0.5.
fn measured_power(law: fn(f64) -> (f64, f64), p: f64, frames: usize) -> f64 {
    let (gl, gr) = law(p);
    let (mut pl, mut pr) = (0.0, 0.0);
    for n in 0..frames {
        let s = (TAU * 440.0 * n as f64 / 48_000.0).sin();
        let (l, r) = ((s * gl) as f32 as f64, (s * gr) as f32 as f64);
        pl += l * l;
        pr += r * r;
    }
    (pl + pr) / frames as f64 / 0.5
}

fn db(power: f64) -> f64 {
    10.0 * power.log10()
}

fn main() {
    header("L5.4", "linear vs constant-power panning");
    let frames = pick(48_000, 4_800);
    println!("{:>5} {:>22} {:>22}", "pan", "linear power (dB)", "const-power power (dB)");
    let mut lin_curve = Vec::new();
    let mut cp_curve = Vec::new();
    for k in 0..=20 {
        let p = k as f64 / 20.0;
        let (lp, cp) = (measured_power(linear, p, frames), measured_power(constant_power, p, frames));
        lin_curve.push((p, db(lp)));
        cp_curve.push((p, db(cp)));
        if k % 5 == 0 {
            println!("{p:>5.2} {lp:>14.4} ({:>+5.2}) {cp:>14.4} ({:>+5.2})", db(lp), db(cp));
        }
    }
    let (lc, cc) = (measured_power(linear, 0.5, frames), measured_power(constant_power, 0.5, frames));
    verdict(
        "a linear pan dips 3 dB in the centre; constant power keeps loudness the same everywhere",
        &format!(
            "summed power at centre: linear {lc:.4} ({:+.2} dB), constant power {cc:.4} ({:+.2} dB)",
            db(lc),
            db(cc)
        ),
        &format!(
            "computed from the gains at centre: linear {:.4}^2 + {:.4}^2 = {:.4}, constant power {:.4}^2 + {:.4}^2 = {:.4}; over the 21 rendered positions constant power stayed within {:+.3}..{:+.3} dB, linear went down to {:+.2} dB",
            linear(0.5).0,
            linear(0.5).1,
            linear(0.5).0.powi(2) + linear(0.5).1.powi(2),
            constant_power(0.5).0,
            constant_power(0.5).1,
            constant_power(0.5).0.powi(2) + constant_power(0.5).1.powi(2),
            cp_curve.iter().map(|p| p.1).fold(f64::MAX, f64::min),
            cp_curve.iter().map(|p| p.1).fold(f64::MIN, f64::max),
            lin_curve.iter().map(|p| p.1).fold(f64::MAX, f64::min)
        ),
    );
    Plot::new()
        .series(lin_curve)
        .series(cp_curve)
        .save("l5_4_pan", "x: pan 0 (left)..1 (right), y: summed power in dB; red: linear, blue: constant power");
}
