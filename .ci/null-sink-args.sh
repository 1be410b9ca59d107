# Sourced by pulse-null-sink.sh and pipewire-null-sink.sh: their shared command line,
# `run|shell [--record FILE] [--keep-log] [-- COMMAND ARGS...]`. Sets `mode`, `record`,
# `keep_log` and the array `command`; prints the caller's `#!` help lines 2..USAGE_END on a
# bad command line and exits 2.

usage() {
    sed -n 's/^#! \{0,1\}//p' "$0" | sed -n "2,${USAGE_END}p" >&2
    exit 2
}

mode=${1:-}
[[ $mode == run || $mode == shell ]] || usage
shift
record=""
# --keep-log, or PULSE_NULL_SINK_KEEP_LOG=1 through a test or report that runs the harness:
# print the server's log even when the run passed.
keep_log=${PULSE_NULL_SINK_KEEP_LOG:-0}
while [[ $# -gt 0 ]]; do
    case $1 in
        --record) record=$2; shift 2 ;;
        --keep-log) keep_log=1; shift ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
if [[ $mode == run && $# -eq 0 ]]; then usage; fi
command=("$@")
