#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs every test: unit tests, the integration tests
# (a real PulseAudio null sink behind ALSA and SDL2, a real window under Xvfb, the dev loop in
# a copied workspace), the lessons in quick mode, the doc tests, a one-pass smoke run of every
# criterion benchmark, and Miri over the arena and the real-time buffers.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup.sh

# Tests that need PulseAudio or Xvfb skip with a message on a developer's machine without
# them; under CI they must run.
export CI="${CI:-}"
export LESSON_QUICK=1

echo "== cargo test (workspace: platform, contract crate, game)"
cargo test --workspace --no-fail-fast

echo "== benchmarks, one pass each (criterion's test mode: checks they run, measures nothing)"
cargo test --benches --quiet

# Never skipped: miri.sh installs the nightly toolchain with Miri when it is missing, or fails
# saying why.
echo "== miri (arena, real-time buffers, memory block carving, snapshots, loop input records)"
bash .ci/miri.sh
