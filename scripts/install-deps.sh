#!/usr/bin/env bash
# Installs the Debian 12 packages VVTV needs to build, run and test — only those that are missing.
# Idempotent: a second run installs nothing and says so.
set -euo pipefail

PACKAGES=(
  # GStreamer: the media engine (build headers + runtime plugins)
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
  # curator: headless browser
  chromium
  # libvmaf build (factory quality gate)
  meson ninja-build nasm xxd libclang-dev
  # independent checker used by tests only, never by the product
  ffmpeg
  # promtool (`promtool check metrics`): the /metrics test checks the exposition with it
  prometheus
  # tv_validate_file and the XMLTV DTD: the guide test validates /epg.xml with them
  xmltv-util
  # fonts for burnt-in text on slate and demo clips
  fonts-dejavu-core
  # the stand-in CDN of the CDN test and the yardstick of `make bench-origin` (with wrk, its load generator)
  nginx wrk
)

# Node.js and npm: the build installs hls.js (embedded into the daemon) and the browser tests' playwright-core from
# web/package-lock.json. Any Node.js 18 or later will do, so Debian's are installed only when there is no npm at all.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} system packages already present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
