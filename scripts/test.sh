#!/usr/bin/env bash
# Installs the dependencies, builds p2pstream with its tests, fuzzes the codec
# briefly, and runs the whole test suite through ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
start=$(date +%s)
bash "$root/scripts/build.sh"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash "$root/scripts/fuzz.sh"
cd "${BUILD_DIR:-$root/build}"
# CTEST_EXCLUDE is a regex of tests to leave out, e.g. '^CliNetns\.' where there is no root.
ctest --output-on-failure -j"$(nproc)" --timeout 600 ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"}
echo "test.sh: done in $(( $(date +%s) - start ))s" >&2
