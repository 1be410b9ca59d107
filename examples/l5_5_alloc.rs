//! Lesson L5.5 Exercise 1, stack vs heap vs arena: the cost of getting a zeroed 4800-sample i16
//! buffer (9600 bytes) each way, as distributions (p50/p99/max, one call per sample so the tail
//! shows) and page-fault counts, plus a buffer above glibc's mmap threshold where malloc's real
//! danger lives.
//!
//! Run with: cargo run --release --example l5_5_alloc

// Deliberate: `with_capacity` + `resize` is malloc then memset, the course's pattern; `vec![0; n]`
// would become calloc, which can skip the memset for fresh pages.
#![allow(clippy::slow_vector_initialization)]

mod common;

use std::hint::black_box;

use common::*;
use handmade_api::MemoryArena;

const SAMPLES: usize = 4800;

/// Times `op` one call per sample and counts the page faults taken during all the calls.
fn measure(label: &str, samples: usize, op: impl FnMut()) -> (Vec<f64>, i64) {
    let before = page_faults().0;
    let t = time_ns(samples, 1, op);
    let faults = page_faults().0 - before;
    let d = report(label, &t, "ns");
    let _ = d;
    println!("{:<34} minor page faults during the run: {faults}", "");
    (t, faults)
}

fn main() {
    header("L5.5 Ex1", "stack vs malloc vs arena for one sound buffer");
    let samples = pick(100_000, 5_000);
    println!("clock overhead per sample: ~{:.0} ns (included in every figure)", clock_overhead_ns());

    let (stack, _) = measure("stack [i16; 4800] zeroed", samples, || {
        let buffer = [0i16; SAMPLES];
        black_box(&buffer);
    });
    let (heap, _) = measure("malloc+zero+free (Vec) 9600 B", samples, || {
        let mut buffer: Vec<i16> = Vec::with_capacity(SAMPLES);
        buffer.resize(SAMPLES, 0);
        black_box(&buffer);
    });
    let mut backing = vec![0u8; 1 << 20];
    let mut arena = MemoryArena::new("lesson", &mut backing);
    let (arena_t, _) = measure("arena temp push_array zeroed", samples, || {
        let mut temp = arena.begin_temp();
        let buffer = temp.push_array(SAMPLES, 0i16).expect("fits");
        black_box(&buffer);
    });
    let (arena_raw, _) = measure("arena push only (no zeroing)", samples, || {
        let mut temp = arena.begin_temp();
        let buffer = temp.push_array(0, 0i16).expect("fits");
        black_box(&buffer);
    });
    let (malloc_raw, _) = measure("malloc+free only (no zeroing)", samples, || {
        let buffer: Vec<i16> = Vec::with_capacity(SAMPLES);
        black_box(&buffer);
    });

    // Above the mmap threshold (128 KiB by default, adaptive): one second of stereo f32.
    let big = 48_000 * 2;
    let big_samples = pick(2_000, 200);
    let (heap_big, faults_big) = measure("malloc+zero+free 384000 B", big_samples, || {
        let mut buffer: Vec<f32> = Vec::with_capacity(big);
        buffer.resize(big, 0.0);
        black_box(&buffer);
    });
    let (arena_big, faults_arena_big) = measure("arena zeroed 384000 B", big_samples, || {
        let mut temp = arena.begin_temp();
        let buffer = temp.push_array(big, 0.0f32).expect("fits");
        black_box(&buffer);
    });

    // glibc raises its mmap threshold after the first free of an mmapped chunk and keeps freed
    // memory at the top of its heap, so the calls above were served from warm memory. With the
    // mmap and trim thresholds pinned at 128 KiB (glibc's defaults before adapting), every free
    // gives the pages back and every malloc maps fresh ones: what a large malloc costs when it
    // does go to the kernel.
    // SAFETY: mallopt only changes glibc's allocator parameters; no other thread allocates now.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
    let (heap_mmap, faults_mmap) = measure("malloc+zero+free 384000 B, pinned", big_samples, || {
        let mut buffer: Vec<f32> = Vec::with_capacity(big);
        buffer.resize(big, 0.0);
        black_box(&buffer);
    });

    let (s, h, a) = (dist(&stack), dist(&heap), dist(&arena_t));
    verdict(
        "stack 15 ns vs heap 850 ns per 4800-sample buffer: heap 56.7x slower",
        &format!(
            "p50 stack {:.0} ns, malloc+zero {:.0} ns, arena+zero {:.0} ns (heap/stack {:.1}x); without zeroing malloc {:.0} ns vs arena {:.0} ns; p99/max malloc {:.0}/{:.0} ns",
            s.p50,
            h.p50,
            a.p50,
            h.p50 / s.p50,
            dist(&malloc_raw).p50,
            dist(&arena_raw).p50,
            h.p99,
            h.max
        ),
        &format!(
            "the course's stack loop measured nothing (an unused array costs one `sub rsp`); zeroing 9600 bytes is most of every figure here, and a malloc+free served from glibc's cache costs {:.0} ns at p50",
            dist(&malloc_raw).p50
        ),
    );
    verdict(
        "malloc is dangerous in the audio path",
        &format!(
            "384000 bytes, {big_samples} calls: malloc p50 {:.0} ns, {faults_big} page faults (glibc's default, adaptive threshold); with glibc's thresholds pinned p50 {:.0} ns, max {:.0} ns, {faults_mmap} page faults ({:.1} per call); the arena p50 {:.0} ns, {faults_arena_big} faults (its first touch only)",
            dist(&heap_big).p50,
            dist(&heap_mmap).p50,
            dist(&heap_mmap).max,
            faults_mmap as f64 / big_samples as f64,
            dist(&arena_big).p50
        ),
        "true, for its tail and its system calls: a large malloc may mmap fresh pages that fault on first touch (and munmap them on free), whether it does depends on allocator state you do not control; an arena's pages are touched once",
    );
    percentile_plot(
        "l5_5_alloc",
        &[("stack", &stack), ("malloc+zero", &heap), ("arena+zero", &arena_t)],
        "ns per 9600-byte buffer",
    );
}
