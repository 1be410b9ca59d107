#!/usr/bin/env bash
# Runs the tests under nightly sanitizers, each in its own target dir (target/asan, target/tsan)
# so the shared debug build is left alone:
# - AddressSanitizer over the platform library's and the contract crate's unit tests and the
#   offline integration tests (the platform executable, with its game library, under ASan);
# - ThreadSanitizer over the real-time buffer types' two-thread tests (SPSC queue and friends).
# std is rebuilt with the sanitizer (-Zbuild-std, needs the rust-src component).
# `--cfg handmade_sanitizer` leaves out the platform's counting malloc (platform/alloc_count.rs),
# which would otherwise replace the sanitizer's; allocation counting is off in these runs, so
# tests/reload.rs (which asserts it is on) is not run here.
# Run with: .ci/sanitizers.sh [asan|tsan]
set -euo pipefail
cd "$(dirname "$0")/.."

WHICH="${1:-all}"
TARGET=x86_64-unknown-linux-gnu
NIGHTLY=(cargo +nightly)
"${NIGHTLY[@]}" --version >/dev/null
rustup +nightly component list --installed | grep -q rust-src || {
    echo "sanitizers: needs rust-src for the nightly toolchain (rustup +nightly component add rust-src)" >&2
    exit 1
}

run_asan() {
    echo "== AddressSanitizer: unit tests (platform, contract crate) and offline integration tests"
    # Flags through --config, not RUSTFLAGS: the integration tests build the game library with
    # a nested cargo, which inherits RUSTFLAGS; an instrumented cdylib cannot be dlopened.
    # The game library is loaded uninstrumented, as the fuzz targets load it.
    ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1" \
        "${NIGHTLY[@]}" test -Zbuild-std --target "$TARGET" --target-dir target/asan \
        --config "target.$TARGET.rustflags=['-Zsanitizer=address','--cfg','handmade_sanitizer']" \
        -p handmade -p handmade_api --lib --test crash_and_loop --test demo_offline -- --test-threads=2
}

run_tsan() {
    echo "== ThreadSanitizer: real-time buffer types (contract crate unit tests, rt::)"
    TSAN_OPTIONS="halt_on_error=1" \
        "${NIGHTLY[@]}" test -Zbuild-std --target "$TARGET" --target-dir target/tsan \
        --config "target.$TARGET.rustflags=['-Zsanitizer=thread','--cfg','handmade_sanitizer']" \
        -p handmade_api --lib -- rt::
}

case "$WHICH" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    all) run_asan && run_tsan ;;
    *) echo "usage: .ci/sanitizers.sh [asan|tsan]" >&2; exit 2 ;;
esac
echo "== sanitizers: clean"
