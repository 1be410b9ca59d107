//! Sample conversion between the game's structure-of-arrays `f32` channels and the
//! interleaved formats devices take. Branch-free inner loops the compiler vectorises.

/// Replaces NaN and infinities with silence and clamps to -1..1. Returns how many samples were
/// not finite, so the platform can say once that the game wrote garbage.
pub fn sanitize(samples: &mut [f32]) -> usize {
    let mut bad = 0;
    for s in samples.iter_mut() {
        let finite = s.is_finite();
        bad += usize::from(!finite);
        *s = if finite { s.clamp(-1.0, 1.0) } else { 0.0 };
    }
    bad
}

/// Interleaves two channels into signed 16-bit frames (`out.len() == 2 * left.len()`),
/// clamping and rounding to nearest.
pub fn interleave_i16(left: &[f32], right: &[f32], out: &mut [i16]) {
    assert!(left.len() == right.len() && out.len() == 2 * left.len(), "interleave_i16: length mismatch");
    for ((frame, &l), &r) in out.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = to_i16(l);
        frame[1] = to_i16(r);
    }
}

/// Interleaves two channels into `f32` frames (`out.len() == 2 * left.len()`); the reference
/// the byte version is checked against.
#[cfg(test)]
pub fn interleave_f32(left: &[f32], right: &[f32], out: &mut [f32]) {
    assert!(left.len() == right.len() && out.len() == 2 * left.len(), "interleave_f32: length mismatch");
    for ((frame, &l), &r) in out.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = l;
        frame[1] = r;
    }
}

/// Interleaves two channels into native-endian `f32` frames as bytes (`out.len() == 8 *
/// left.len()`), the layout of ALSA's `FLOAT` format: what `PCM::io_bytes` writes without an
/// unsafe cast or a per-write hardware-parameter query.
pub fn interleave_f32_bytes(left: &[f32], right: &[f32], out: &mut [u8]) {
    assert!(left.len() == right.len() && out.len() == 8 * left.len(), "interleave_f32_bytes: length mismatch");
    for ((frame, &l), &r) in out.chunks_exact_mut(8).zip(left).zip(right) {
        frame[..4].copy_from_slice(&l.to_ne_bytes());
        frame[4..].copy_from_slice(&r.to_ne_bytes());
    }
}

/// Interleaves two channels into native-endian signed 16-bit frames as bytes (`out.len() ==
/// 4 * left.len()`), converting like `interleave_i16`.
pub fn interleave_i16_bytes(left: &[f32], right: &[f32], out: &mut [u8]) {
    assert!(left.len() == right.len() && out.len() == 4 * left.len(), "interleave_i16_bytes: length mismatch");
    for ((frame, &l), &r) in out.chunks_exact_mut(4).zip(left).zip(right) {
        frame[..2].copy_from_slice(&to_i16(l).to_ne_bytes());
        frame[2..].copy_from_slice(&to_i16(r).to_ne_bytes());
    }
}

#[inline]
pub fn to_i16(sample: f32) -> i16 {
    // Round half away from zero like `f32::round`, but as an add and a truncating `as`:
    // `round` is a libm call on baseline x86_64 and kept this loop scalar (3x slower, measured
    // in l8_2_simd). `as` saturates (and maps NaN to 0), so this never wraps.
    let scaled = sample * 32767.0;
    (scaled + 0.5f32.copysign(scaled)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_and_clamps() {
        let mut out = [0i16; 6];
        interleave_i16(&[0.0, 1.0, 2.0], &[-1.0, -2.0, 0.5], &mut out);
        assert_eq!(out, [0, -32767, 32767, -32768, 32767, 16384]);
    }

    #[test]
    fn byte_interleaving_matches_the_sample_interleaving() {
        let (left, right) = ([0.0, 1.0, 2.0, -0.25], [-1.0, -2.0, 0.5, 0.125]);
        let mut samples = [0i16; 8];
        let mut bytes = [0u8; 16];
        interleave_i16(&left, &right, &mut samples);
        interleave_i16_bytes(&left, &right, &mut bytes);
        let from_bytes: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_ne_bytes([b[0], b[1]])).collect();
        assert_eq!(from_bytes, samples);
        let mut floats = [0f32; 8];
        let mut bytes = [0u8; 32];
        interleave_f32(&left, &right, &mut floats);
        interleave_f32_bytes(&left, &right, &mut bytes);
        let from_bytes: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(from_bytes, floats);
    }

    #[test]
    fn sanitize_silences_non_finite_samples() {
        let mut s = [f32::NAN, f32::INFINITY, 0.5, -3.0];
        assert_eq!(sanitize(&mut s), 2);
        assert_eq!(s, [0.0, 0.0, 0.5, -1.0]);
    }
}
