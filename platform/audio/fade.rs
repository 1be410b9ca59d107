//! Short gain ramps that turn a jump in the sound (a crash, a rollback, a loop restart) into a
//! dip instead of a click. 5 ms is below what the ear hears as a gap but long enough that the
//! step has no broadband energy.

/// Frames a fade lasts at `rate` (5 ms).
pub fn fade_frames(rate: u32) -> usize {
    (rate as usize / 200).max(1)
}

/// Replaces the buffer with a ramp from the last samples played down to silence.
pub fn ramp_to_silence(left: &mut [f32], right: &mut [f32], last: (f32, f32), rate: u32) {
    let n = fade_frames(rate);
    for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).enumerate() {
        let gain = if i < n { 1.0 - (i + 1) as f32 / n as f32 } else { 0.0 };
        *l = last.0 * gain;
        *r = last.1 * gain;
    }
}

/// Ramps the start of the buffer up from silence.
pub fn fade_in(left: &mut [f32], right: &mut [f32], rate: u32) {
    let n = fade_frames(rate);
    for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).take(n).enumerate() {
        let gain = i as f32 / n as f32;
        *l *= gain;
        *r *= gain;
    }
}

/// Ramps the end of the buffer down to silence.
pub fn fade_out(left: &mut [f32], right: &mut [f32], rate: u32) {
    let len = left.len();
    let n = fade_frames(rate).min(len);
    for i in 0..n {
        let gain = i as f32 / n as f32; // 0 at the last frame
        left[len - 1 - i] *= gain;
        right[len - 1 - i] *= gain;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_are_gentle_and_end_where_they_should() {
        let (mut l, mut r) = ([0.0f32; 800], [0.0f32; 800]);
        ramp_to_silence(&mut l, &mut r, (0.5, -0.5), 48_000);
        assert!(l.windows(2).all(|w| (w[0] - w[1]).abs() <= 0.5 / 240.0 + 1e-6), "no step bigger than one ramp step");
        assert_eq!(l[239..], [0.0; 561]);
        let (mut l, mut r) = ([1.0f32; 800], [1.0f32; 800]);
        fade_in(&mut l, &mut r, 48_000);
        fade_out(&mut l, &mut r, 48_000);
        assert_eq!((l[0], l[400], l[799]), (0.0, 1.0, 0.0));
    }
}
