#!/usr/bin/env bash
# The soak (not part of CI: it takes a few minutes offline and SOAK_REALTIME_MINUTES in real
# time): one hour of game time (216,000 frames) offline with a reload every 300 frames, then a
# real-time run through the private PulseAudio null sink with a reload every 5 s. Checks zero
# allocations after warm-up, a flat arena high-water mark and resident size (against a
# 3,600-frame run), zero underruns, and that both recordings are one unbroken sine.
# Usage: .ci/soak.sh            (SOAK_FRAMES=216000 SOAK_REALTIME_MINUTES=10 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
frames="${SOAK_FRAMES:-216000}"
minutes="${SOAK_REALTIME_MINUTES:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin handmade --example tone_check
cargo build --quiet -p game --profile game-fast
bin=target/release/handmade
check=target/release/examples/tone_check
stat() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
fail() { echo "soak: FAILED: $*" >&2; exit 1; }
common=(--headless --no-rebuild --reload-every 300 --stats)

echo "soak: warm-up reference, 3,600 frames"
short=$("$bin" "${common[@]}" --audio none --frames 3600 2>/dev/null)
echo "soak: $frames frames offline (one hour of game time at 60 fps)"
start=$(date +%s)
long=$("$bin" "${common[@]}" --audio wav --wav-out "$work/soak.wav" --frames "$frames" 2>"$work/soak.log")
echo "soak: took $(( $(date +%s) - start )) s"
echo "$long"
[[ $(stat "$long" heap_allocs_after_warmup) == 0 ]] || fail "allocations after warm-up"
[[ $(stat "$long" sound_heap_allocs) == 0 ]] || fail "allocations in the sound path"
[[ $(stat "$long" reload_failures) == 0 ]] || fail "reload failures"
[[ $(stat "$long" arena_high_water_bytes) == $(stat "$short" arena_high_water_bytes) ]] \
    || fail "arena high-water grew: $(stat "$short" arena_high_water_bytes) -> $(stat "$long" arena_high_water_bytes)"
growth=$(awk -v a="$(stat "$short" resident_mib)" -v b="$(stat "$long" resident_mib)" 'BEGIN { print b - a }')
echo "soak: resident $(stat "$short" resident_mib) MiB after 3,600 frames, $(stat "$long" resident_mib) MiB after $frames (growth $growth MiB)"
awk -v g="$growth" 'BEGIN { exit !(g < 2.0) }' || fail "resident memory grew by $growth MiB"
"$check" "$work/soak.wav" || fail "the offline sound is broken"
rm -f "$work/soak.wav"

if [[ "$minutes" == 0 ]]; then exit 0; fi
if ! command -v pulseaudio >/dev/null; then
    echo "soak: skipped the real-time run (no pulseaudio: .ci/setup.sh)"; exit 0
fi
echo "soak: $minutes minutes in real time through ALSA into the PulseAudio null sink"
rt=$(.ci/pulse-null-sink.sh run --record "$work/rt.wav" -- "$bin" "${common[@]}" --audio alsa \
    --frames $(( minutes * 3600 )) 2>"$work/rt.log")
echo "$rt"
[[ $(stat "$rt" underruns) == 0 ]] || fail "$(stat "$rt" underruns) underruns"
[[ $(stat "$rt" heap_allocs_after_warmup) == 0 ]] || fail "allocations after warm-up"
"$check" "$work/rt.wav" || fail "the real-time sound is broken"
echo "soak: passed"
