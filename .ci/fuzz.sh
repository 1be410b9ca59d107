#!/usr/bin/env bash
# Fuzzes the platform's parsers and loaders (tests/fuzz: wav, loop_recording, input_script,
# game_library) for a bounded time each and fails if any target crashes, hangs or allocates
# without bound. Crash inputs land in tests/fuzz/artifacts/<target>/ (reproduce with
# `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>`).
# Run with: .ci/fuzz.sh [target...]      FUZZ_SECONDS=60 per target by default.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wav loop_recording input_script game_library)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The game library and the load probe, built normally (before RUSTFLAGS changes below, so the
# shared target dir is not rebuilt). With the probe, a library that crashes ld.so kills a
# throwaway process, not the fuzzer: GameCode refuses it in one line (platform/load_probe.rs).
cargo build -p game --quiet
cargo build --bin handmade-probe --quiet
export HANDMADE_PROBE="$PWD/target/debug/handmade-probe"

# The platform exports its own counting malloc (platform/alloc_count.rs); under AddressSanitizer
# that would replace ASan's and crash before main, so the fuzz build leaves it out.
export RUSTFLAGS="${RUSTFLAGS:-} --cfg handmade_sanitizer"

echo "== building the fuzz targets (AddressSanitizer, debug assertions)"
cargo +nightly fuzz build --fuzz-dir tests/fuzz

# A real game library is loaded once below to show it still passes every check. It is also cut
# at a few points (section table zeroed, so the program header checks are what stands between
# the file and ld.so) as extra seeds, too big to commit. Mutations of those reach ld.so with
# damaged relocations, data or code: the probe process is what catches those.
EXTRA=tests/fuzz/target/extra-seeds
rm -rf "$EXTRA" && mkdir -p "$EXTRA/game_library"
if [ -z "${FUZZ_SHALLOW:-}" ]; then
    python3 - target/debug/libgame.so "$EXTRA/game_library" <<'PY'
import struct, sys
elf = open(sys.argv[1], "rb").read()
for i in range(1, 9):
    cut = bytearray(elf[: len(elf) * i // 10])
    struct.pack_into("<Q", cut, 0x28, 0)  # e_shoff
    struct.pack_into("<H", cut, 0x3C, 0)  # e_shnum
    open(f"{sys.argv[2]}/cut-{i}0pct", "wb").write(cut)
PY
fi
echo "== the real game library loads in the fuzz build"
tests/fuzz/target/x86_64-unknown-linux-gnu/release/game_library target/debug/libgame.so 2>&1 | grep -E "^Executed|ERROR" 

status=0
for target in "${TARGETS[@]}"; do
    echo "== fuzzing $target for ${SECONDS_EACH}s"
    mkdir -p "tests/fuzz/corpus/$target"
    extra=()
    [ -n "$(ls -A "$EXTRA/$target" 2>/dev/null)" ] && extra=("$EXTRA/$target")
    # New corpus entries go to the first directory (git ignores them; seed-* files are tracked).
    # -rss_limit_mb / -malloc_limit_mb: a claimed size must never turn into an allocation.
    set +e
    cargo +nightly fuzz run --fuzz-dir tests/fuzz "$target" "tests/fuzz/corpus/$target" "${extra[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -print_final_stats=1 >"tests/fuzz/target/$target.log" 2>&1
    rc=$?
    set -e
    grep -E "^Done |stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|ERROR|SUMMARY|artifact" \
        "tests/fuzz/target/$target.log" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $rc), see tests/fuzz/target/$target.log and tests/fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit $status
