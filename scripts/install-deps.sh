#!/usr/bin/env bash
# Installs every Debian 12 package that p2pstream's build, tests and demo need.
# Safe to run twice: apt-get skips what is already there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

PKGS=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates
  # libraries
  libcli11-dev nlohmann-json3-dev libfmt-dev libsodium-dev libxxhash-dev
  libsqlite3-dev libcurl4-openssl-dev libssl-dev
  # network transports on the GLib main loop (signalling, JSON-RPC over WebSocket, stand-in node)
  libsoup-3.0-dev libglib2.0-dev
  # media: GStreamer 1.22 with webrtcbin, nice, dtls, srtp, vpx, opus, x264
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-nice gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  # tests: TLS for the signalling and wss tests, headless chromium for browser interop,
  # network namespaces and packet loss for the relay tests
  libgtest-dev libgmock-dev python3 glib-networking openssl
  chromium fonts-liberation iproute2 nftables
  # fuzzing (clang's libFuzzer)
  clang libclang-rt-14-dev
  # completion and man page checks
  zsh fish mandoc man-db
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js runs the test-only oracles (@polkadot/types, socket.io-client). Machine images may ship
# their own build of it; take Debian's only when there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present" >&2
else
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test-only npm packages, pinned by tests/js/package-lock.json.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/js/package-lock.json" ] && [ ! -d "$root/tests/js/node_modules" ]; then
  echo "install-deps: npm ci in tests/js" >&2
  npm ci --prefix "$root/tests/js" --no-audit --no-fund --loglevel=error
fi
