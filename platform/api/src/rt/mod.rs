//! Real-time buffer toolkit: fixed-size structures carved from a `MemoryArena`, safe to use on
//! the audio path (no allocation, no locks, bounded work).
