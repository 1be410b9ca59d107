#!/usr/bin/env bash
# Runs the contract crate's tests (the arena and the real-time toolkit: pool, ring, delay line,
# SPSC queue, double buffer) and the platform's memory-block, snapshot, asset and ALSA
# sample-ring tests and the seqlock (platform/seqlock.rs) under Miri, which checks every unsafe
# access for undefined behaviour and the two-thread tests for data races. Long stress tests
# are skipped or shrunk under `cfg(miri)`. Usage: .ci/miri.sh [extra `cargo miri test` args]
set -euo pipefail
cd "$(dirname "$0")/.."

installed=$(rustup +nightly component list --installed 2>/dev/null || true)
if ! grep -q '^miri' <<<"$installed" || ! grep -q '^rust-src' <<<"$installed"; then
    if ! command -v rustup >/dev/null; then
        echo "miri.sh: Miri needs rustup to install the nightly toolchain (https://rustup.rs); none on PATH" >&2
        exit 1
    fi
    echo "miri.sh: installing the nightly toolchain with the miri and rust-src components" >&2
    if ! rustup toolchain install nightly --profile minimal --component miri rust-src >&2; then
        echo "miri.sh: could not install nightly with miri and rust-src (rustup failed, see above)" >&2
        exit 1
    fi
fi

# A separate target dir: Miri's artifacts must not invalidate the shared debug build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
# Tree Borrows is the aliasing model Rust is converging on; Stacked Borrows is stricter about
# raw pointers. Run with MIRIFLAGS=-Zmiri-tree-borrows to try the other one.
export MIRIFLAGS="${MIRIFLAGS:-}"
cargo +nightly miri setup
cargo +nightly miri test -p handmade_api "$@"
# The platform's own unsafe memory handling: carving the block, snapshots of the game's
# storage, decoding assets into the arena, loop input records. (The rest of the platform is
# FFI: ALSA, SDL2, dlopen, which Miri cannot run.)
# (`memory::` holds the block, `memory::snapshot` and `memory::assets`.)
exec cargo +nightly miri test -p handmade --lib "$@" -- memory:: dev::live_loop::tests::input audio::sample_ring \
    seqlock::
