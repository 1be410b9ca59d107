#!/usr/bin/env bash
# README figures in one command (issue 17.8): builds in release once, measures every row of the
# README's "Benchmarks and reports" table TWICE (two complete passes, one after the other, with
# the project's own benches and reports), and rewrites the table between `<!-- figures:begin -->`
# and `<!-- figures:end -->` with the date, the machine, each figure as "pass 1 / pass 2" and how
# far the two passes varied. Nothing outside the markers is touched.
# Raw outputs stay in target/figures/pass{1,2}/ for checking a figure against its source.
# Usage: bash .ci/figures.sh
#   FIGURES_AUDIO_SECONDS (default 5): length of each audio_report sweep step (AUDIO_REPORT_SECONDS)
#   FIGURES_EDITS (default 5): edits per edit_to_hear run (EDITS; 5 is its minimum)
#   FIGURES_SOAK_FRAMES (default 216000): frames of the offline soak (0 leaves the soak row out)
#   FIGURES_NO_README=1: print the table instead of writing README.md
# `bash .ci/figures.sh --table-only` rebuilds the table from the raw outputs of the last run
# (target/figures) without measuring again, e.g. after changing how a row is written.
set -uo pipefail
cd "$(dirname "$0")/.."
out=target/figures
audio_seconds="${FIGURES_AUDIO_SECONDS:-5}"
edits="${FIGURES_EDITS:-5}"
soak_frames="${FIGURES_SOAK_FRAMES:-216000}"
started=$(date +%s)

say() { echo "figures: $*" >&2; }

# Runs one measurement, its output (stdout and stderr) to FILE; a failure is reported in one line
# and leaves the rows that need it out of the table, the other measurements still run.
measure() {
    local file=$1; shift
    local t0=$SECONDS
    "$@" >"$file" 2>&1
    local rc=$?
    if [[ $rc != 0 ]]; then
        say "FAILED ($rc): $* (see $file); its rows are left out"
        echo "figures: exit status $rc" >>"$file"
    else
        say "  $(( SECONDS - t0 )) s: $*"
    fi
}

one_pass() {
    local dir=$1
    mkdir -p "$dir"
    # The load when the pass starts: on a shared machine it explains most of the variation.
    cut -d' ' -f1-3 /proc/loadavg >"$dir/loadavg"
    measure "$dir/bench_reload.txt" cargo bench --bench reload
    measure "$dir/bench_guard.txt" cargo bench --bench guard
    measure "$dir/bench_toolkit.txt" cargo bench --bench toolkit
    measure "$dir/platform_stats.txt" target/release/handmade --headless --audio none --frames 3600 \
        --reload-every 7 --stats --no-rebuild
    measure "$dir/demo_report.txt" cargo run --release --quiet --example demo_report
    measure "$dir/audio_report.txt" env AUDIO_REPORT_SECONDS="$audio_seconds" \
        .ci/pulse-null-sink.sh run -- cargo run --release --quiet --example audio_report
    measure "$dir/edit_to_hear.txt" env VARIANTS=final EDITS="$edits" cargo run --release --quiet --example edit_to_hear
    if [[ $soak_frames != 0 ]]; then
        measure "$dir/soak.txt" env SOAK_FRAMES="$soak_frames" SOAK_REALTIME_MINUTES=0 bash .ci/soak.sh
    fi
}

# Builds, runs both passes and records what the table's first line says about the run.
measure_all() {
    rm -rf "$out"
    mkdir -p "$out"
    run_date=$(date -u '+%Y-%m-%d %H:%M UTC')
    say "building in release (workspace, all targets) and the game-fast game the release platform loads"
    cargo build --release --workspace --all-targets || { say "FAILED: the release build"; exit 1; }
    cargo build --quiet -p game --profile game-fast || { say "FAILED: the game-fast build"; exit 1; }
    for pass in 1 2; do
        say "pass $pass of 2"
        one_pass "$out/pass$pass"
    done
    elapsed=$(( $(date +%s) - started ))
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    machine="$(nproc) CPUs (nproc), ${cpu:-unknown CPU}, Linux $(uname -r)"
    declare -p run_date elapsed machine audio_seconds edits soak_frames | sed 's/^declare -[-a-z]* //' >"$out/run.env"
}

if [[ ${1:-} == --table-only ]]; then
    [[ -f $out/run.env ]] || { say "no earlier run in $out: run bash .ci/figures.sh"; exit 1; }
    # shellcheck source=/dev/null
    source "$out/run.env"
else
    measure_all
fi
table=$(python3 .ci/figures_table.py "$out" \
    --date "$run_date" --machine "$machine" \
    --elapsed "$elapsed" --audio-seconds "$audio_seconds" --edits "$edits" --soak-frames "$soak_frames") \
    || { say "FAILED: building the table from $out"; exit 1; }
printf '%s\n' "$table" >"$out/table.md"
if [[ ${FIGURES_NO_README:-0} == 1 ]]; then
    cat "$out/table.md"
else
    python3 .ci/figures_table.py --splice README.md "$out/table.md" || exit 1
    say "README.md: table rewritten between the figures markers"
fi
say "done in $(( elapsed / 60 )) min $(( elapsed % 60 )) s (raw outputs in $out)"
