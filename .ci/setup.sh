#!/usr/bin/env bash
#! The one install script for a fresh Debian/Ubuntu box: the system libraries the platform links
#! (alsa-lib, SDL2) and what the paced audio tests need (a private PulseAudio with a null sink,
#! ALSA's pulse plugin, parec, Xvfb for a hidden window). Idempotent; run as root (no sudo).
set -euo pipefail

PACKAGES=(
    pkg-config
    libasound2-dev
    libsdl2-dev
    pulseaudio
    pulseaudio-utils
    libasound2-plugins
    alsa-utils
    xvfb
    xauth
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"
