#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ (or $FUZZ_BUILD_DIR) and runs each in turn
# for ${FUZZ_SECONDS:-30} seconds on a copy of its seeds:
#   codec_fuzz   (scale, sails, w3b/messages)          seeds in fuzz/corpus/
#   signal_fuzz  (signalling codec, session, router)   seeds in fuzz/corpus-signal/
# FUZZ_TARGETS="signal_fuzz" runs a subset. Exits non-zero on the first crash.
# Needs clang and libFuzzer's runtime (Debian: clang, libclang-rt-14-dev).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-codec_fuzz signal_fuzz}"
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

seeds_of() {
  case "$1" in
    codec_fuzz) echo "$root/fuzz/corpus" ;;
    signal_fuzz) echo "$root/fuzz/corpus-signal" ;;
    *) echo "fuzz.sh: unknown target $1" >&2; exit 2 ;;
  esac
}

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DP2P_FUZZ=ON -DP2P_TESTS=OFF -DCMAKE_CXX_FLAGS="$san" >/dev/null
# shellcheck disable=SC2086  # the target list is meant to split
cmake --build "$build" --target $targets -j"$(nproc)"

artifacts="$build/artifacts"
mkdir -p "$artifacts"
for target in $targets; do
  seeds="$(seeds_of "$target")"
  # The fuzzer adds what it finds to the first directory; keep the committed seeds untouched.
  corpus="$build/corpus-$target"
  mkdir -p "$corpus"
  echo "fuzz.sh: running $target for ${seconds}s (crash inputs go to $artifacts/)" >&2
  "$build/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target-" "$corpus" "$seeds"
done
