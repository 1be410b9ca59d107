#!/usr/bin/env bash
#! A private PipeWire (pipewire + wireplumber + pipewire-pulse, on a session dbus-daemon) with
#! a 48 kHz null sink, for headless tests that need real pacing through the server most Linux
#! desktops run (issue 12). The same interface as .ci/pulse-null-sink.sh; everything lives in
#! a temp dir and is torn down on exit, also on failure.
#!
#! Usage:
#!   .ci/pipewire-null-sink.sh run [--record OUT.wav] [--keep-log] -- COMMAND [ARGS...]
#!       Starts the servers, runs COMMAND with PULSE_SERVER (pipewire-pulse), HOME (holding an
#!       .asoundrc that routes ALSA's `default` to the null sink) and SDL_AUDIODRIVER set,
#!       and with --record captures what the sink played (its monitor, 48 kHz s16le stereo
#!       WAV). Exits with COMMAND's status.
#!   .ci/pipewire-null-sink.sh shell
#!       Same environment, for poking around by hand: runs $SHELL inside it.
#!
#! Environment seen by COMMAND: as with pulse-null-sink.sh (PULSE_SERVER, PULSE_SINK_NAME,
#! PULSE_TMP, HOME, XDG_RUNTIME_DIR, SDL_AUDIODRIVER, PULSE_NULL_SINK_KILL / _START, CARGO_HOME,
#! RUSTUP_HOME), plus DBUS_SESSION_BUS_ADDRESS, SOUND_SERVER=pipewire and
#! PULSE_NULL_SINK_PIDS (a script printing the sound servers' pids, for stop/cont fault tests).
#! SDL_AUDIODRIVER is `pulseaudio` (through pipewire-pulse) unless
#! PIPEWIRE_NULL_SINK_SDL_DRIVER names another (`pipewire`: SDL's own PipeWire driver).
#! ALSA's `default` goes through the pulse plugin into pipewire-pulse unless
#! PIPEWIRE_NULL_SINK_ALSA=pipewire: through PipeWire's own ALSA plugin (pipewire-alsa), as on
#! a PipeWire desktop. COMMAND sees PIPEWIRE_NULL_SINK_ALSA set to the path taken.
set -euo pipefail

SINK=handmade_null
RATE=48000

USAGE_END=24
# shellcheck source=null-sink-args.sh
source "$(dirname "$0")/null-sink-args.sh"
for tool in pipewire wireplumber pipewire-pulse dbus-daemon pactl; do
    command -v "$tool" >/dev/null || {
        echo "pipewire-null-sink: $tool is not installed (.ci/setup.sh)" >&2
        exit 3
    }
done

real_home=$HOME
tmp=$(mktemp -d "${TMPDIR:-/tmp}/handmade-pipewire.XXXXXX")
chmod 700 "$tmp"
bus_pid=""
rec_pid=""

# Every pid the start script ever wrote (a test may restart the servers): ours to end.
server_pids() {
    cat "$tmp/server.pids" 2>/dev/null || true
}

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $rec_pid ]]; then
        kill -INT "$rec_pid" 2>/dev/null || true
        wait "$rec_pid" 2>/dev/null || true
    fi
    local pids
    # A start still under way (a test's restart) starts no server after this.
    touch "$tmp/stopping"
    pids=$(server_pids)
    if [[ -n $pids ]]; then
        # A stopped server (a fault test) must be continued to see the TERM.
        kill -CONT $pids 2>/dev/null || true
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
        kill -KILL $pids 2>/dev/null || true
    fi
    if [[ -n $bus_pid ]]; then
        kill -TERM "$bus_pid" 2>/dev/null || true
        wait "$bus_pid" 2>/dev/null || true
    fi
    if [[ $status -ne 0 || $keep_log -eq 1 ]]; then
        for log in pipewire wireplumber pipewire-pulse; do
            if [[ -s $tmp/$log.log ]]; then
                echo "pipewire-null-sink: $log log follows" >&2
                tail -n "${PULSE_NULL_SINK_LOG_LINES:-30}" "$tmp/$log.log" >&2
            fi
        done
    fi
    # Its servers are gone: a start script still waiting or trying goes too (after them, so
    # they were its children to reap, not orphans to wait for).
    kill -KILL $(cat "$tmp/start.pids" 2>/dev/null) 2>/dev/null || true
    rm -rf "$tmp"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/home/.config/pulse" "$tmp/run" "$tmp/state"
chmod 700 "$tmp/run"
export CARGO_HOME=${CARGO_HOME:-$real_home/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$real_home/.rustup}
export HOME=$tmp/home
export XDG_RUNTIME_DIR=$tmp/run
export XDG_CONFIG_HOME=$tmp/home/.config
# WirePlumber keeps its default-node choices here: private, so no run sees another's.
export XDG_STATE_HOME=$tmp/state
export PULSE_RUNTIME_PATH=$tmp/run/pulse
export PULSE_SERVER=unix:$tmp/run/pulse/native
export PULSE_SINK_NAME=$SINK
export PULSE_TMP=$tmp
export SOUND_SERVER=pipewire
export SDL_AUDIODRIVER=${PIPEWIRE_NULL_SINK_SDL_DRIVER:-pulseaudio}
export DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/run/bus
# Logs go to our files, not the journal.
export PIPEWIRE_LOG_SYSTEMD=false
echo "autospawn = no" >"$XDG_CONFIG_HOME/pulse/client.conf"
export PULSE_CLIENTCONFIG=$XDG_CONFIG_HOME/pulse/client.conf

# The directory holding PipeWire's ALSA plugins: the system's when pipewire-alsa is installed.
# Debian 12's pipewire-alsa conflicts with pulseaudio (installing it removes the PulseAudio the
# other harness needs), so otherwise the plugins are unpacked from the package matching the
# installed libpipewire (apt-get download, dpkg-deb -x: no install, no root) into a cache, once.
pipewire_alsa_plugins() {
    local libasound system version cache work unpacked
    libasound=$(ldconfig -p | awk '/libasound\.so\.2 /{print $NF; exit}')
    system=$(dirname "${libasound:-/usr/lib/x}")/alsa-lib
    if [[ -e $system/libasound_module_pcm_pipewire.so ]]; then
        echo "$system"
        return
    fi
    version=$(dpkg-query -W -f='${Version}' libpipewire-0.3-0 2>/dev/null) || {
        echo "pipewire-null-sink: no libpipewire-0.3-0 package to match pipewire-alsa to" >&2
        return 1
    }
    cache=${HANDMADE_CACHE:-$real_home/.cache/handmade}/pipewire-alsa-$version
    if [[ ! -e $cache/libasound_module_pcm_pipewire.so ]]; then
        work=$(mktemp -d "$tmp/fetch.XXXXXX")
        if ! (cd "$work" && apt-get download -q "pipewire-alsa=$version" && dpkg-deb -x pipewire-alsa_*.deb x) \
            >"$work/log" 2>&1; then
            echo "pipewire-null-sink: cannot unpack pipewire-alsa $version: $(grep -v '^W:' "$work/log" | tail -n 1)" >&2
            return 1
        fi
        unpacked=$(dirname "$(find "$work/x" -name libasound_module_pcm_pipewire.so | head -n 1)")
        mkdir -p "$(dirname "$cache")"
        # Another run may be unpacking too: whoever renames first wins, the other's copy goes.
        mv "$unpacked" "$cache.$$" && { mv -T "$cache.$$" "$cache" 2>/dev/null || rm -rf "$cache.$$"; }
    fi
    echo "$cache"
}

# The pulseaudio package's ALSA hook (/etc/alsa/conf.d/99-pulse.conf) makes `default` the pulse
# plugin whenever a pulse server answers, overriding ~/.asoundrc; a PipeWire desktop has no
# pulseaudio package, so no hook. ALSA_CONFIG_PATH names a copy of alsa.conf that reads a
# private conf.d: every file of /etc/alsa/conf.d but that hook.
without_pulse_hook() {
    local top=${ALSA_CONFIG_PATH:-/usr/share/alsa/alsa.conf} conf_d=$tmp/alsa-conf.d file
    mkdir -p "$conf_d"
    for file in /etc/alsa/conf.d/*.conf; do
        [[ -e $file ]] || continue
        grep -q conf_pulse_hook_load_if_running "$file" || ln -s "$file" "$conf_d/"
    done
    sed "s#\"/etc/alsa/conf.d\"#\"$conf_d\"#" "$top" >"$tmp/alsa.conf"
    grep -q "\"$conf_d\"" "$tmp/alsa.conf" || {
        echo "pipewire-null-sink: $top does not load /etc/alsa/conf.d as expected" >&2
        exit 3
    }
    export ALSA_CONFIG_PATH=$tmp/alsa.conf
}

# ALSA's `default`: through PipeWire's own ALSA plugin (pipewire-alsa) straight into the
# graph, as on a PipeWire desktop, or through the pulse plugin (libasound2-plugins) into
# pipewire-pulse. Either way into the null sink, the default sink, named here as well so a run
# never lands elsewhere. Written out rather than left to /etc/alsa/conf.d, so the choice holds
# whatever the machine has installed.
alsa_path=${PIPEWIRE_NULL_SINK_ALSA:-pulse}
case $alsa_path in
    pipewire)
        plugins=$(pipewire_alsa_plugins) || exit 3
        without_pulse_hook
        cat >"$HOME/.asoundrc" <<ASOUNDRC
pcm_type.pipewire { lib "$plugins/libasound_module_pcm_pipewire.so" }
ctl_type.pipewire { lib "$plugins/libasound_module_ctl_pipewire.so" }
pcm.!default { type pipewire playback_node "$SINK" capture_node "$SINK.monitor" }
ctl.!default { type pipewire }
ASOUNDRC
        ;;
    pulse)
        printf 'pcm.!default { type pulse }\nctl.!default { type pulse }\n' >"$HOME/.asoundrc"
        ;;
    *)
        echo "pipewire-null-sink: PIPEWIRE_NULL_SINK_ALSA=$alsa_path: not pipewire or pulse" >&2
        exit 2
        ;;
esac
export PIPEWIRE_NULL_SINK_ALSA=$alsa_path

# The session bus: WirePlumber needs one (it also owns the device reservation names there).
# It is not the sound server, so a test's kill/start hooks leave it running.
dbus-daemon --session --nofork --nopidfile --address="$DBUS_SESSION_BUS_ADDRESS" >"$tmp/dbus.log" 2>&1 &
bus_pid=$!
for _ in $(seq 100); do [[ -S $tmp/run/bus ]] && break; sleep 0.02; done
[[ -S $tmp/run/bus ]] || { echo "pipewire-null-sink: dbus-daemon did not start" >&2; exit 4; }

# The start command is a script of its own so a test can kill the servers and start them
# again (PULSE_NULL_SINK_KILL / PULSE_NULL_SINK_START). It starts the three daemons, waits for
# pipewire-pulse to answer, loads the null sink (a module of pipewire-pulse: it goes when that
# does) and makes it the default, then stays until the daemons end, like `pulseaudio` does.
# As root PipeWire's module-rt makes its data threads SCHED_FIFO, as rtkit does on a desktop.
cat >"$tmp/start-server.sh" <<START
#!/usr/bin/env bash
# One attempt: the three daemons, pipewire-pulse answering, the sink loaded. A restarted
# stack has now and then not come up: about once in 20 restarts in the server-death tests,
# where the platform reconnects at once, and never in 40 restarts with no client waiting.
# pipewire-pulse then accepts connections and never answers, with all three daemons idle in
# epoll_wait; the cause was not found. So the session manager is waited for before the pulse
# server starts, and an attempt whose pulse server has not answered within 2 s is killed and
# started again, up to three times, and says so. A harness tearing down (\$tmp/stopping)
# starts nothing more.
start_once() {
    local pids=()
    # A killed server leaves its socket file behind: waiting for the file alone would go on
    # at once, and pipewire-pulse could then come up against a daemon still loading its
    # modules (seen: "Failure: Not supported" from load-module, and no sink).
    rm -f "$tmp/run/pipewire-0"
    [[ -e "$tmp/stopping" ]] && return 2
    pipewire >>"$tmp/pipewire.log" 2>&1 </dev/null &
    pids+=(\$!)
    echo \$! >>"$tmp/server.pids"
    for _ in \$(seq 100); do [[ -S "$tmp/run/pipewire-0" ]] && break; sleep 0.02; done
    [[ -e "$tmp/stopping" ]] && { kill -KILL "\${pids[@]}"; return 2; }
    wireplumber >>"$tmp/wireplumber.log" 2>&1 </dev/null &
    pids+=(\$!)
    echo \$! >>"$tmp/server.pids"
    # The session manager's metadata before the pulse server: a client already waiting (a
    # platform reopening its device) connects the moment the pulse socket is there.
    for _ in \$(seq 100); do
        timeout 0.5 pw-cli ls Metadata 2>/dev/null | grep -q "\"default\"" && break
        sleep 0.02
    done
    [[ -e "$tmp/stopping" ]] && { kill -KILL "\${pids[@]}"; return 2; }
    pipewire-pulse >>"$tmp/pipewire-pulse.log" 2>&1 </dev/null &
    pids+=(\$!)
    echo \$! >>"$tmp/server.pids"
    local deadline=\$(( \$(date +%s%N) + 2000000000 )) answered=0
    until timeout 0.5 pactl info >/dev/null 2>&1 && answered=1; do
        (( \$(date +%s%N) < deadline )) || break
        sleep 0.02
    done
    if (( answered )); then
        for _ in \$(seq 10); do
            timeout 1 pactl load-module module-null-sink sink_name=$SINK rate=$RATE channels=2 format=s16le \\
                sink_properties=device.description=handmade-null >/dev/null 2>&1 && break
            sleep 0.1
        done
        timeout 1 pactl list short sinks 2>/dev/null | grep -q "$SINK" && return 0
    fi
    [[ -e "$tmp/stopping" ]] && { kill -KILL "\${pids[@]}"; return 2; }
    kill -KILL "\${pids[@]}" 2>/dev/null
    wait "\${pids[@]}" 2>/dev/null
    return 1
}
echo \$\$ >>"$tmp/start.pids"
for attempt in 1 2 3; do
    start_once
    case \$? in 0) break ;; 2) exit 0 ;; esac
    if (( attempt < 3 )); then
        echo "pipewire-null-sink: the servers were not up (attempt \$attempt of 3); starting them again" >&2
    else
        echo "pipewire-null-sink: the servers were not up (attempt 3 of 3); giving up" >&2
        exit 1
    fi
done
pactl set-default-sink $SINK
touch "$tmp/ready"
wait
START
# Kills the sound servers (not the bus) as a crash would.
printf '#!/usr/bin/env bash\nrm -f "%s/ready"\nkill -KILL $(cat "%s/server.pids") 2>/dev/null || true\n' \
    "$tmp" "$tmp" >"$tmp/kill-server.sh"
printf '#!/usr/bin/env bash\ncat "%s/server.pids"\n' "$tmp" >"$tmp/server-pids.sh"
chmod +x "$tmp/start-server.sh" "$tmp/kill-server.sh" "$tmp/server-pids.sh"
export PULSE_NULL_SINK_START="$tmp/start-server.sh" PULSE_NULL_SINK_KILL="$tmp/kill-server.sh"
export PULSE_NULL_SINK_PIDS="$tmp/server-pids.sh"
"$tmp/start-server.sh" &
disown

for _ in $(seq 750); do
    [[ -e $tmp/ready ]] && break
    sleep 0.02
done
[[ -e $tmp/ready ]] || { echo "pipewire-null-sink: the servers were not ready within 15 s" >&2; exit 4; }
pactl list short sinks | grep -q "$SINK" || { echo "pipewire-null-sink: no $SINK sink" >&2; exit 4; }

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
    echo "pipewire-null-sink: PULSE_SERVER=$PULSE_SERVER HOME=$HOME (exit the shell to tear down)" >&2
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
