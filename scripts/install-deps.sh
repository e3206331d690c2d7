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
  libsqlite3-dev libcurl4-openssl-dev
  # tests
  libgtest-dev libgmock-dev python3
  # fuzzing (clang's libFuzzer)
  clang libclang-rt-14-dev
  # completion and man page checks
  zsh fish mandoc man-db
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present" >&2
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
