//! Real-time buffer toolkit: fixed-size structures carved from a `MemoryArena`, safe to use on
//! the audio path (no allocation, no locks, bounded work). Every type borrows its storage from
//! the arena (`&'a mut` slices, or shared atomics for the two-thread types), so the game can keep
//! them in permanent storage (`'a = 'static`) and they survive a reload with the rest of its
//! state. The single-thread types derive `StateLayout`, so a state holding them is fingerprinted
//! down to the element type of their storage.
//!
//! | type | use |
//! |---|---|
//! | [`Pool`] | voices/grains: fixed slots, O(1) free list, generation-checked handles |
//! | [`DelayLine`] | echo/chorus/comb: power-of-two history, interpolated fractional reads |
//! | [`RingBuffer`] | single-thread FIFO/history, power of two |
//! | [`spsc`] | lock-free single-producer single-consumer queue between two threads |
//! | [`double_buffer`] | publish a consistent snapshot to the audio thread, no update lost |
//! | [`drain_bounded`] | take at most N queued items per audio block |
//! | [`ChannelBuffers`] | SoA sample storage sized exactly from channels x frames |
//! | [`QueueCounters`] | overruns, underruns and high-water marks for monitoring |

pub mod channel_buffers;
pub mod counters;
pub mod delay_line;
pub mod double_buffer;
pub mod drain;
pub mod pool;
pub mod ring;
mod shared_block;
pub mod spsc;

pub use channel_buffers::ChannelBuffers;
pub use counters::QueueCounters;
pub use delay_line::DelayLine;
pub use double_buffer::{DoubleBufferReader, DoubleBufferWriter};
pub use drain::{drain_bounded, Drained, PopFront};
pub use pool::{Pool, PoolHandle};
pub use ring::RingBuffer;
pub use shared_block::CACHE_LINE;
pub use spsc::{Consumer, Producer};

#[cfg(test)]
pub(crate) mod test_rng;
