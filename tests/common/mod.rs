//! The integration tests' helpers: all of them live in the `handmade_support` crate
//! (tests/support), shared with the examples and benchmarks; `mod common;` keeps the names the
//! tests use.
#![allow(unused_imports)]

pub use handmade_support::*;
