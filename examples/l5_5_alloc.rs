//! Lesson L5.5 Exercise 1, stack vs heap vs arena: the cost of getting a zeroed 4800-sample i16
//! buffer (9600 bytes) each way, as distributions (p50/p99/max, one call per sample so the tail
//! shows) and page-fault counts, plus a buffer above glibc's mmap threshold where malloc's real
//! danger lives. Also runs the course's own two loops (1000 iterations each writing element 0
//! of a stack array, or of a malloc'd one) and disassembles them to show what they time.
//!
//! Run with: cargo run --release --example l5_5_alloc

// Deliberate: `with_capacity` + `resize` is malloc then memset, the course's pattern; `vec![0; n]`
// would become calloc, which can skip the memset for fresh pages.
#![allow(clippy::slow_vector_initialization)]

mod common;

use std::hint::black_box;
use std::mem::MaybeUninit;

use common::*;
use handmade_api::MemoryArena;

const SAMPLES: usize = 4800;

/// The course's stack loop: `int16_t stack_buffer[4800]; stack_buffer[0] = i;` 1000 times,
/// the array uninitialised as in C, nothing read back.
#[inline(never)]
fn course_stack_loop() {
    for i in 0..1000 {
        let mut stack_buffer = MaybeUninit::<[i16; SAMPLES]>::uninit();
        // SAFETY: writes element 0 of the array through a pointer into its own storage.
        unsafe { stack_buffer.as_mut_ptr().cast::<i16>().write(i as i16) };
    }
}

/// The course's heap loop: malloc 9600 bytes, write element 0, free; 1000 times.
#[inline(never)]
fn course_heap_loop() {
    for i in 0..1000 {
        // SAFETY: malloc's result is checked before the write; the block is 9600 bytes, so
        // element 0 is in bounds; it is freed once, by the pointer malloc returned.
        unsafe {
            let heap_buffer = libc::malloc(SAMPLES * 2).cast::<i16>();
            if !heap_buffer.is_null() {
                heap_buffer.write(i as i16);
            }
            libc::free(heap_buffer.cast());
        }
    }
}

/// What the compiler left of one function of this executable (`objdump -d`): the symbol its
/// code sits under (identical functions are merged, so it may be another's name), its
/// instruction count (padding left out), whether it jumps backwards (a loop), and its calls.
struct Compiled {
    symbol: String,
    instructions: usize,
    has_loop: bool,
    calls: Vec<String>,
}

/// Finds `f`'s code by its run-time address (relative to `main`, whose symbol is known), so a
/// function the compiler merged with an identical one is still found.
fn disassemble(f: fn()) -> Option<Compiled> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("objdump").args(["-d", "--no-show-raw-insn", "-C"]).arg(exe).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let header_address = |l: &str| u64::from_str_radix(l.split(' ').next().unwrap_or(""), 16).ok();
    let main_file = text.lines().find(|l| l.ends_with("<l5_5_alloc::main>:")).and_then(header_address)?;
    let offset = (f as usize as i64).wrapping_sub(main as fn() as usize as i64);
    let target = format!("{:016x} <", main_file.wrapping_add_signed(offset));
    let start = text.lines().position(|l| l.starts_with(&target))?;
    let header = text.lines().nth(start)?;
    let symbol = header.split('<').nth(1).map_or("", |n| n.trim_end_matches(">:")).to_string();
    let body: Vec<&str> = text
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.split('\t').nth(1).is_some_and(|op| !op.starts_with("int3") && !op.starts_with("nop")))
        .collect();
    let address = |l: &str| u64::from_str_radix(l.trim().split(':').next().unwrap_or(""), 16).ok();
    let mut compiled = Compiled { symbol, instructions: body.len(), has_loop: false, calls: Vec::new() };
    for line in &body {
        let mut fields = line.split('\t').skip(1);
        let (op, arg) = (fields.next().unwrap_or("").trim(), fields.next().unwrap_or(""));
        let op = op.split_whitespace().next().unwrap_or("");
        let target = arg.split_whitespace().next().and_then(|t| u64::from_str_radix(t, 16).ok());
        if op.starts_with('j') && target.zip(address(line)).is_some_and(|(t, here)| t <= here) {
            compiled.has_loop = true;
        }
        if op.starts_with("call") {
            let name = arg.split('<').nth(1).map_or(arg, |n| n.trim_end_matches('>'));
            compiled.calls.push(name.to_string());
        }
    }
    Some(compiled)
}

/// Runs one of the course's loops as the course does (1000 iterations per timing, ns per
/// iteration) and says what the compiler left of it.
fn course_loop(label: &str, samples: usize, op: fn()) -> (f64, Option<Compiled>) {
    let per_iteration: Vec<f64> = time_ns(samples, 1, op).iter().map(|ns| ns / 1000.0).collect();
    let d = report(label, &per_iteration, "ns/iter");
    let compiled = disassemble(op);
    match &compiled {
        Some(c) => println!(
            "{:<34} compiled (objdump, code under `{}`): {} instructions, loop: {}, calls: {}",
            "",
            c.symbol,
            c.instructions,
            if c.has_loop { "yes" } else { "no" },
            if c.calls.is_empty() { "none".to_string() } else { c.calls.join(", ") }
        ),
        None => println!("{:<34} not disassembled (objdump missing or code not found)", ""),
    }
    (d.p50, compiled)
}

/// The course's stack loop: what this run showed it measures.
fn stack_loop_why(p50: f64, compiled: &Option<Compiled>) -> String {
    match compiled {
        Some(c) if !c.has_loop => format!(
            "the course's stack loop, compiled here, has no loop left ({} instructions, disassembled): its {p50:.2} ns per iteration is one call of it and a clock read, divided by 1000",
            c.instructions
        ),
        Some(c) => format!(
            "the course's stack loop still loops here ({} instructions, disassembled): {p50:.2} ns per iteration for one store each, no zeroing",
            c.instructions
        ),
        None => format!("the course's stack loop measured {p50:.2} ns per iteration (not disassembled)"),
    }
}

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

    let loops = pick(20_000, 2_000);
    let (stack_loop, stack_compiled) = course_loop("course's stack loop (1000 iter.)", loops, course_stack_loop);
    let (heap_loop, heap_compiled) = course_loop("course's heap loop (1000 iter.)", loops, course_heap_loop);
    let heap_calls_malloc = heap_compiled.as_ref().map(|c| c.calls.iter().any(|n| n.contains("malloc")));

    let (s, h, a) = (dist(&stack), dist(&heap), dist(&arena_t));
    let (mr, ar) = (dist(&malloc_raw), dist(&arena_raw));
    verdict(
        "stack 15 ns vs heap 850 ns per 4800-sample buffer: heap 56.7x slower",
        &format!(
            "p50 stack {:.0} ns, malloc+zero {:.0} ns, arena+zero {:.0} ns (heap/stack {:.1}x); without zeroing malloc {:.0} ns vs arena {:.0} ns; p99/max malloc {:.0}/{:.0} ns",
            s.p50,
            h.p50,
            a.p50,
            h.p50 / s.p50,
            mr.p50,
            ar.p50,
            h.p99,
            h.max
        ),
        &format!(
            "{}; its heap loop {:.2} ns per iteration{}; in this run zeroing was {:.0}% of malloc+zero's p50 and {:.0}% of arena+zero's",
            stack_loop_why(stack_loop, &stack_compiled),
            heap_loop,
            match heap_calls_malloc {
                Some(true) => " (it does call malloc)",
                Some(false) => " (no malloc call left in it: the compiler removed the pair)",
                None => "",
            },
            (1.0 - mr.p50 / h.p50).max(0.0) * 100.0,
            (1.0 - ar.p50 / a.p50).max(0.0) * 100.0
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
        &if faults_mmap as f64 / big_samples as f64 >= 1.0 {
            format!(
                "with glibc's thresholds pinned every call took fresh pages ({:.1} faults per call) and its p50 rose {:.0}x over the default's, which took {faults_big} faults in {big_samples} calls: what a malloc costs depends on allocator state, while the arena took {faults_arena_big} faults",
                faults_mmap as f64 / big_samples as f64,
                dist(&heap_mmap).p50 / dist(&heap_big).p50
            )
        } else {
            format!(
                "in this run malloc did not fault per call even with the thresholds pinned ({:.1} faults per call): what this run shows against it is only its tail (max {:.0} ns)",
                faults_mmap as f64 / big_samples as f64,
                dist(&heap_mmap).max
            )
        },
    );
    percentile_plot(
        "l5_5_alloc",
        &[("stack", &stack), ("malloc+zero", &heap), ("arena+zero", &arena_t)],
        "ns per 9600-byte buffer",
    );
}
