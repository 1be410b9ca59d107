#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs every test: unit tests, the integration tests
# (a real PulseAudio null sink behind ALSA and SDL2, a real window under Xvfb, the dev loop in
# a copied workspace), the lessons in quick mode, the doc tests, a one-pass smoke run of every
# criterion benchmark, and Miri over the arena and the real-time buffers.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup.sh

# PipeWire's own ALSA plugin, for the tests that reach PipeWire as a desktop's ALSA does.
# Debian 12's pipewire-alsa conflicts with pulseaudio, so it is not installed: the PipeWire
# harness unpacks it into ~/.cache/handmade, once. Done here, so no test run downloads it (and
# not in setup.sh, which the demo's command runs too).
if PIPEWIRE_NULL_SINK_ALSA=pipewire bash .ci/pipewire-null-sink.sh run -- true; then
    echo "test: PipeWire's ALSA plugin is ready"
else
    echo "test: PipeWire's ALSA plugin could not be prepared (above); tests/audio_pipewire_alsa.rs will fail" >&2
fi

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
