//! Lesson L8.3, lock-free buffers: the toolkit's SPSC queue (`handmade_api::rt::spsc`, storage in
//! an arena, Release/Acquire indices) against a `Mutex<VecDeque>`, moving items between two
//! threads; per-batch push timings show the mutex's tail. Ends with why `Relaxed` is wrong.
//!
//! Run with: cargo run --release --example l8_3_spsc

mod common;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use common::*;
use handmade_api::{rt::spsc, MemoryArena};

const BATCH: u64 = 64;

/// Sends `items` through the queue; returns ns per item overall and per-batch push times.
fn run_spsc(items: u64) -> (f64, Vec<f64>) {
    let mut backing = vec![0u8; 1 << 20];
    let mut arena = MemoryArena::new("lesson", &mut backing);
    let (mut tx, mut rx) = spsc::channel::<u64>(&mut arena, 1024).expect("fits");
    let start = Instant::now();
    let mut batches = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut expected = 0;
            while expected < items {
                if let Some(v) = rx.pop() {
                    assert_eq!(v, expected, "order");
                    expected += 1;
                }
            }
        });
        let mut next = 0;
        while next < items {
            let t = Instant::now();
            let end = (next + BATCH).min(items);
            while next < end {
                if tx.push(next).is_ok() {
                    next += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            batches.push(t.elapsed().as_nanos() as f64);
        }
    });
    (start.elapsed().as_nanos() as f64 / items as f64, batches)
}

fn run_mutex(items: u64) -> (f64, Vec<f64>) {
    let queue = Mutex::new(VecDeque::with_capacity(1024));
    let start = Instant::now();
    let mut batches = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut expected = 0;
            while expected < items {
                if let Some(v) = queue.lock().unwrap().pop_front() {
                    assert_eq!(v, expected, "order");
                    expected += 1;
                }
            }
        });
        let mut next = 0;
        while next < items {
            let t = Instant::now();
            let end = (next + BATCH).min(items);
            while next < end {
                let mut q = queue.lock().unwrap();
                if q.len() < 1024 {
                    q.push_back(next);
                    next += 1;
                }
            }
            batches.push(t.elapsed().as_nanos() as f64);
        }
    });
    (start.elapsed().as_nanos() as f64 / items as f64, batches)
}

fn main() {
    header("L8.3", "lock-free SPSC queue vs Mutex<VecDeque>");
    let items = pick(10_000_000, 500_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{items} u64 items, capacity 1024, two threads on {cores} core(s)");
    let (spsc_ns, spsc_b) = run_spsc(items);
    let (mutex_ns, mutex_b) = run_mutex(items);
    println!("throughput: spsc {spsc_ns:.1} ns/item, mutex {mutex_ns:.1} ns/item");
    let a = report("spsc: push 64 items", &spsc_b, "ns");
    let b = report("mutex: push 64 items", &mutex_b, "ns");
    verdict(
        "a lock-free queue is faster and, above all, never blocks the audio thread",
        &format!(
            "spsc {:.1}x the mutex's throughput; 64-item push p99 {:.0} ns vs {:.0} ns, max {:.0} vs {:.0} ns",
            mutex_ns / spsc_ns,
            a.p99,
            b.p99,
            a.max,
            b.max
        ),
        "with the mutex each item bounces the lock's cache line and the consumer can hold it while the OS preempts it: the producer then waits a whole time slice (the max); the SPSC producer only ever waits for a full queue",
    );
    println!("relaxed: storing `tail` with Relaxed lets the compiler or an ARM CPU make the new index visible before the slot's contents, so the consumer may read a stale slot; x86's TSO usually hides this (its stores stay in order), which is why a wrong queue 'works' on a desktop and fails on a phone; Release on the index store and Acquire on its load forbid that order, and .ci/miri.sh runs the queue's two-thread test under Miri's data-race detector");
    verdict(
        "the seeds' queue is lock-free and correct",
        &format!("this run moved {items} items through each queue; the consumer checked every one arrived once and in order"),
        "passing on x86 proves little about ordering: Release when publishing an index and Acquire when reading the other side's are what make it correct on every CPU; Relaxed is enough only for a side's own index and for counters",
    );
    percentile_plot("l8_3_spsc", &[("spsc", &spsc_b), ("mutex", &mutex_b)], "ns per 64 pushes");
}
