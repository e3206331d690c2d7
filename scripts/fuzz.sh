#!/usr/bin/env bash
# Builds the libFuzzer target codec_fuzz with clang into build-fuzz/ (or $FUZZ_BUILD_DIR) and runs it for
# ${FUZZ_SECONDS:-30} seconds on a copy of the seeds in fuzz/corpus/. Exits non-zero on a crash.
# Needs clang and libFuzzer's runtime (Debian: clang, libclang-rt-14-dev).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-30}"
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DP2P_FUZZ=ON -DP2P_TESTS=OFF -DCMAKE_CXX_FLAGS="$san" >/dev/null
cmake --build "$build" --target codec_fuzz -j"$(nproc)"

# The fuzzer adds what it finds to the first directory; keep the committed seeds untouched.
corpus="$build/corpus"
artifacts="$build/artifacts"
mkdir -p "$corpus" "$artifacts"

echo "fuzz.sh: running codec_fuzz for ${seconds}s (crash inputs go to $artifacts/)" >&2
"$build/fuzz/codec_fuzz" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" "$root/fuzz/corpus"
