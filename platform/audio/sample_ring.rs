//! The lock-free ring between the frame loop and the ALSA I/O thread (`io_thread.rs`): one
//! producer (the frame thread, which interleaves the game's frame of sound into it once a
//! frame) and one consumer (the I/O thread, which hands the device what the ring holds every
//! period, straight from the ring's memory). It holds whole device frames as bytes.
//!
//! Not `handmade_api::rt::spsc`: that queue is carved from an arena whose lifetime the I/O
//! thread cannot borrow (the backend is a `Box<dyn AudioOutput>` the thread outlives), and it
//! copies items out, where the device write wants to read contiguous bytes in place and take
//! back what the device did not accept.
//!
//! Ordering: the producer copies into the free bytes, then publishes `tail` with `Release`; the
//! consumer loads `tail` with `Acquire` before reading them. The consumer publishes `head` with
//! `Release` after the device has read the bytes; the producer loads it with `Acquire` before
//! writing over them. Indices count frames and run free (they wrap at `usize::MAX`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Release};
use std::sync::Arc;

struct Shared {
    /// `capacity * frame_bytes` bytes; a byte is written only by the producer while it is free
    /// and read only by the consumer while it is filled (see the module header).
    bytes: Box<[UnsafeCell<u8>]>,
    capacity: usize,
    frame_bytes: usize,
    head: AtomicUsize,
    tail: AtomicUsize,
}

// SAFETY: the bytes are only reached through one `Producer` and one `Consumer`, each touching
// only the range the indices give it (free for the producer, filled for the consumer), and the
// ranges change hands with Release/Acquire: no byte is accessed by both threads at once.
unsafe impl Sync for Shared {}

/// The frame thread's half.
pub struct Producer {
    shared: Arc<Shared>,
}

/// The I/O thread's half.
pub struct Consumer {
    shared: Arc<Shared>,
}

/// A ring of `capacity` frames of `frame_bytes` bytes each, allocated here (at open).
pub fn ring(capacity: usize, frame_bytes: usize) -> (Producer, Consumer) {
    let capacity = capacity.max(1);
    let bytes = (0..capacity * frame_bytes.max(1)).map(|_| UnsafeCell::new(0)).collect();
    let shared = Arc::new(Shared {
        bytes,
        capacity,
        frame_bytes: frame_bytes.max(1),
        head: AtomicUsize::new(0),
        tail: AtomicUsize::new(0),
    });
    (Producer { shared: shared.clone() }, Consumer { shared })
}

impl Shared {
    /// The byte range of `frames` frames from index `at`, split where the ring wraps.
    fn ranges(&self, at: usize, frames: usize) -> [(usize, usize); 2] {
        let start = at % self.capacity;
        let first = frames.min(self.capacity - start);
        [(start * self.frame_bytes, first * self.frame_bytes), (0, (frames - first) * self.frame_bytes)]
    }

    fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.bytes.as_ptr())
    }
}

impl Producer {
    /// Frames queued and not yet taken by the consumer.
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.tail.load(Acquire).wrapping_sub(s.head.load(Acquire))
    }

    /// Copies as many whole frames of `frames` (bytes) as there is room for; returns how many.
    pub fn push(&mut self, frames: &[u8]) -> usize {
        let s = &*self.shared;
        let tail = s.tail.load(std::sync::atomic::Ordering::Relaxed);
        let free = s.capacity - tail.wrapping_sub(s.head.load(Acquire));
        let n = (frames.len() / s.frame_bytes).min(free);
        let mut from = 0;
        for (offset, len) in s.ranges(tail, n) {
            // SAFETY: `offset..offset + len` lies inside `bytes` (`ranges` stays below
            // capacity * frame_bytes) and in the free part of the ring, which only this
            // producer touches until `tail` is published below.
            unsafe { std::ptr::copy_nonoverlapping(frames[from..].as_ptr(), s.base().add(offset), len) };
            from += len;
        }
        s.tail.store(tail.wrapping_add(n), Release);
        n
    }
}

impl Consumer {
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.tail.load(Acquire).wrapping_sub(s.head.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn frame_bytes(&self) -> usize {
        self.shared.frame_bytes
    }

    /// The first filled bytes that lie in one piece: up to `frames` frames, fewer where the ring
    /// wraps (call again after `consume` for the rest). They stay valid until `consume`.
    pub fn readable(&self, frames: usize) -> &[u8] {
        let s = &*self.shared;
        let head = s.head.load(std::sync::atomic::Ordering::Relaxed);
        let n = frames.min(s.tail.load(Acquire).wrapping_sub(head));
        let [(offset, len), _] = s.ranges(head, n);
        // SAFETY: the range lies inside `bytes` and in the filled part, which the producer does
        // not write until `consume` publishes `head`; `&self` borrowed for the slice's life
        // keeps `consume` (`&mut self`) from running while it is read.
        unsafe { std::slice::from_raw_parts(s.base().add(offset), len) }
    }

    /// Gives `frames` read frames back to the producer.
    pub fn consume(&mut self, frames: usize) {
        let s = &*self.shared;
        let head = s.head.load(std::sync::atomic::Ordering::Relaxed);
        let n = frames.min(s.tail.load(Acquire).wrapping_sub(head));
        s.head.store(head.wrapping_add(n), Release);
    }

    /// Drops everything queued (a device that was lost and came back starts afresh).
    pub fn clear(&mut self) {
        self.consume(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_across_the_wrap() {
        let (mut tx, mut rx) = ring(5, 2);
        assert_eq!(tx.push(&[1, 1, 2, 2, 3, 3, 9]), 3, "whole frames only");
        assert_eq!(rx.readable(2), &[1, 1, 2, 2]);
        rx.consume(2);
        assert_eq!(tx.push(&[4, 4, 5, 5, 6, 6, 7, 7, 8, 8]), 4, "no more than the room");
        assert_eq!((tx.len(), rx.len()), (5, 5));
        assert_eq!(rx.readable(9), &[3, 3, 4, 4, 5, 5], "up to the wrap");
        rx.consume(3);
        assert_eq!(rx.readable(9), &[6, 6, 7, 7]);
        rx.clear();
        assert_eq!((tx.len(), rx.readable(9)), (0, &[][..]));
    }

    /// Two threads, a small ring: every frame arrives once, in order (run under Miri by
    /// .ci/miri.sh to check the ordering and the unsafe blocks).
    #[test]
    fn a_producer_and_a_consumer_on_two_threads() {
        let total: u16 = if cfg!(miri) { 300 } else { 20_000 };
        let (mut tx, mut rx) = ring(7, 2);
        let consumer = std::thread::spawn(move || {
            let mut next = 0u16;
            while next < total {
                let bytes = rx.readable(3);
                let frames = bytes.len() / 2;
                for f in bytes.chunks(2) {
                    assert_eq!(u16::from_le_bytes([f[0], f[1]]), next);
                    next += 1;
                }
                rx.consume(frames);
                std::thread::yield_now();
            }
        });
        let mut sent = 0u16;
        while sent < total {
            let chunk: Vec<u8> = (sent..total.min(sent + 4)).flat_map(u16::to_le_bytes).collect();
            sent += tx.push(&chunk) as u16;
            std::thread::yield_now();
        }
        consumer.join().unwrap();
    }
}
