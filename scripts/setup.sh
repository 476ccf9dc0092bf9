#!/usr/bin/env bash
# Installs everything egress needs on a fresh Debian 12 machine: GStreamer 1.22 (dev headers and plugins),
# the tools tests use to check outputs (gst-discoverer-1.0, ffprobe, promtool), nginx with the RTMP module (a real
# RTMP server for stream tests) and redis-server.
# Idempotent: it does nothing when every package is already installed.
set -euo pipefail

packages=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  redis-server ffmpeg prometheus procps curl libnginx-mod-rtmp
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start services (nginx on :80, prometheus on :9090): tests start their own on free
# loopback ports. policy-rc.d answering 101 is Debian's switch for that; ours is removed again on exit.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -q
# --no-install-recommends keeps prometheus from pulling its web console and node exporter.
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
