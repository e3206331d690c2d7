#!/usr/bin/env bash
# Builds media_bench and prints lib/media's figures on this machine:
#   glass-to-glass latency (VP8, H.264; jitter buffer 0 and 50 ms), time to first frame (with
#   the stored DTLS key, and with a fresh one),
#   sender CPU per added viewer and frames lost for N viewers (sender pinned to CPU 0, the
#   receivers standing in for remote viewers to CPU 1).
# Usage: bench/media/run.sh [build-dir]   (default: build; env SECONDS_PER_RUN, RUNS, VIEWERS)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
secs="${SECONDS_PER_RUN:-15}"
runs="${RUNS:-10}"
viewers="${VIEWERS:-8,16,32,64}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target media_bench >/dev/null
bench="$build/bench/media/media_bench"

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), GStreamer $(pkg-config --modversion gstreamer-1.0)"
for codec in vp8 h264; do
  for jb in 0 50; do
    "$bench" latency --codec "$codec" --latency "$jb" --seconds "$secs"
  done
done
# As the CLI runs (the DTLS key kept from an earlier run), then VP8 with a new key per process.
for codec in vp8 h264; do
  "$bench" first-frame --codec "$codec" --runs "$runs" --latency 0 --dtls-key stored
done
"$bench" first-frame --codec vp8 --runs "$runs" --latency 0 --dtls-key fresh
# The same through the real CLI, signalling server and ledger.
cmake --build "$build" -j2 --target p2pstream >/dev/null
for codec in vp8 h264; do
  python3 "$root/bench/media/cli_first_frame.py" "$build/cli/p2pstream" --codec "$codec" --runs "$runs"
done
python3 "$root/bench/media/cli_first_frame.py" "$build/cli/p2pstream" --codec vp8 --runs "$runs" --fresh-dtls-key
"$bench" fanout --codec vp8 --viewers "$viewers" --seconds "$secs"
echo "# done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
