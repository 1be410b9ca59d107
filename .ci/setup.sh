#!/usr/bin/env bash
#! The one install script for a fresh Debian/Ubuntu box: the system libraries the platform links
#! (alsa-lib, SDL2) and what the paced audio tests need (a private PulseAudio with a null sink,
#! a private PipeWire with its pulse server and WirePlumber on a session D-Bus, ALSA's pulse
#! plugin, parec, Xvfb for a hidden window), rtkit and polkitd for tests/realtime.rs (real-time
#! priority granted by rtkit on a private system bus), libpulse-dev for the l6_2_pulse lesson's
#! binding and DejaVu Sans for the lessons' plot text. Idempotent; run as root (no sudo).
set -euo pipefail

PACKAGES=(
    pkg-config
    gcc
    libasound2-dev
    libsdl2-dev
    pulseaudio
    pulseaudio-utils
    pipewire
    pipewire-bin
    pipewire-pulse
    wireplumber
    dbus
    rtkit
    polkitd
    libasound2-plugins
    alsa-utils
    xvfb
    xauth
    libpulse-dev
    fonts-dejavu-core
)

if ! command -v cargo >/dev/null; then
    echo "setup: no cargo on PATH: install a stable Rust toolchain (rustup) first" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup: all ${#PACKAGES[@]} packages already installed"
else
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then
            as_root=(sudo)
        else
            echo "setup: missing ${missing[*]}; run this script as root" >&2
            exit 1
        fi
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update
    "${as_root[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

