#!/usr/bin/env bash
#! A private PulseAudio with a 48 kHz null sink, for headless tests that need real pacing
#! (issue 3). Everything lives in a temp dir and is torn down on exit, also on failure.
#!
#! Usage:
#!   .ci/pulse-null-sink.sh run [--record OUT.wav] [--keep-log] -- COMMAND [ARGS...]
#!       Starts the server, runs COMMAND with PULSE_SERVER, HOME (holding an .asoundrc that
#!       routes ALSA's `default` to the pulse plugin) and SDL_AUDIODRIVER=pulseaudio set, and
#!       with --record captures what the sink played (its monitor, 48 kHz s16le stereo WAV).
#!       Exits with COMMAND's status.
#!   .ci/pulse-null-sink.sh shell
#!       Same environment, for poking around by hand: runs $SHELL inside it.
#!
#! Environment seen by COMMAND: PULSE_SERVER, PULSE_SINK_NAME, PULSE_TMP, HOME, XDG_RUNTIME_DIR,
#! SDL_AUDIODRIVER, PULSE_NULL_SINK_KILL / PULSE_NULL_SINK_START (scripts that kill the server
#! and start it again, for fault tests), plus CARGO_HOME/RUSTUP_HOME pinned to the real ones.
#!
#! Settings, from the environment: PULSE_NULL_SINK_LOG_LEVEL (notice; debug logs each stream
#! underrun, with a time), PULSE_NULL_SINK_KEEP_LOG=1 (print the log's tail even when the run
#! passed), PULSE_NULL_SINK_LOG_LINES (30), PULSE_NULL_SINK_SRBCHANNEL (no; a desktop's
#! PulseAudio says yes: clients then hand their sound to the sink's thread without the
#! server's main thread in between).
set -euo pipefail

SINK=handmade_null
RATE=48000

USAGE_END=16
# shellcheck source=null-sink-args.sh
source "$(dirname "$0")/null-sink-args.sh"
command -v pulseaudio >/dev/null || { echo "pulse-null-sink: pulseaudio is not installed (.ci/setup.sh)" >&2; exit 3; }

real_home=$HOME
tmp=$(mktemp -d "${TMPDIR:-/tmp}/handmade-pulse.XXXXXX")
chmod 700 "$tmp"
server_pid=""
rec_pid=""

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $rec_pid ]]; then
        kill -INT "$rec_pid" 2>/dev/null || true
        wait "$rec_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # A server a test restarted is not our child: find it by its socket.
    pkill -KILL -f "socket=$tmp/run/pulse/native" 2>/dev/null || true
    if [[ $status -ne 0 || $keep_log -eq 1 ]] && [[ -s $tmp/pulse.log ]]; then
        echo "pulse-null-sink: server log follows" >&2
        tail -n "${PULSE_NULL_SINK_LOG_LINES:-30}" "$tmp/pulse.log" >&2
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/home" "$tmp/run/pulse" "$tmp/state"
chmod 700 "$tmp/run" "$tmp/run/pulse"
export CARGO_HOME=${CARGO_HOME:-$real_home/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$real_home/.rustup}
export HOME=$tmp/home
export XDG_RUNTIME_DIR=$tmp/run
export XDG_CONFIG_HOME=$tmp/home/.config
export PULSE_RUNTIME_PATH=$tmp/run/pulse
export PULSE_STATE_PATH=$tmp/state
export PULSE_SERVER=unix:$tmp/run/pulse/native
export PULSE_SINK_NAME=$SINK
export PULSE_TMP=$tmp
export SDL_AUDIODRIVER=pulseaudio
# No client ever autospawns a server: with PULSE_SERVER set it would not anyway; be explicit.
mkdir -p "$XDG_CONFIG_HOME/pulse"
echo "autospawn = no" >"$XDG_CONFIG_HOME/pulse/client.conf"
export PULSE_CLIENTCONFIG=$XDG_CONFIG_HOME/pulse/client.conf

# ALSA's `default` goes to the pulse plugin (libasound2-plugins), and so to the null sink.
cat >"$HOME/.asoundrc" <<'EOF'
pcm.!default { type pulse }
ctl.!default { type pulse }
EOF

# -n: no default.pa, load only what is named here. As root pulseaudio warns that it is not meant
# to run as root outside system mode; with its own runtime dir that is harmless here.
# The start command is a script of its own so a test can kill the server and start it again
# (PULSE_NULL_SINK_KILL / PULSE_NULL_SINK_START); teardown kills any server on this socket.
cat >"$tmp/start-server.sh" <<START
#!/usr/bin/env bash
exec pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no --system=no \\
    --disallow-exit=yes --log-target="file:$tmp/pulse.log" --log-time=1 --log-level="${PULSE_NULL_SINK_LOG_LEVEL:-notice}" \\
    --load="module-native-protocol-unix socket=$tmp/run/pulse/native auth-anonymous=1 srbchannel=${PULSE_NULL_SINK_SRBCHANNEL:-no}" \\
    --load="module-null-sink sink_name=$SINK rate=$RATE channels=2 format=s16le norewinds=1 sink_properties=device.description=handmade-null" \\
    --load="module-default-device-restore" </dev/null >>"$tmp/pulse.log" 2>&1
START
printf '#!/usr/bin/env bash\npkill -KILL -f "socket=%s/run/pulse/native" || true\n' "$tmp" >"$tmp/kill-server.sh"
chmod +x "$tmp/start-server.sh" "$tmp/kill-server.sh"
export PULSE_NULL_SINK_START="$tmp/start-server.sh" PULSE_NULL_SINK_KILL="$tmp/kill-server.sh"
"$tmp/start-server.sh" &
server_pid=$!

for _ in $(seq 100); do
    if pactl info >/dev/null 2>&1; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { echo "pulse-null-sink: pulseaudio exited at start-up" >&2; exit 4; }
    sleep 0.05
done
pactl info >/dev/null 2>&1 || { echo "pulse-null-sink: pulseaudio did not answer within 5 s" >&2; exit 4; }
pactl set-default-sink "$SINK"

if [[ -n $record ]]; then
    parec --device="$SINK.monitor" --rate=$RATE --channels=2 --format=s16le \
        --latency-msec=10 --file-format=wav "$record" &
    rec_pid=$!
    # Let the recording stream connect before the command makes sound.
    for _ in $(seq 40); do
        pactl list short source-outputs 2>/dev/null | grep -q . && break
        sleep 0.05
    done
fi

if [[ $mode == shell ]]; then
    echo "pulse-null-sink: PULSE_SERVER=$PULSE_SERVER HOME=$HOME (exit the shell to tear down)" >&2
    "${SHELL:-bash}" || true
    exit 0
fi

set +e
"${command[@]}"
cmd_status=$?
set -e
# Let the sink render what is still queued before the recording stops.
[[ -n $record ]] && sleep 0.3
exit "$cmd_status"
