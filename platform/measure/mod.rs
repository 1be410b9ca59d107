//! What the platform counts about itself: heap allocations per thread (`alloc_count`, the
//! counting `malloc`), frame and reload timings and the `--stats` line (`stats`).

pub mod alloc_count;
pub mod stats;
