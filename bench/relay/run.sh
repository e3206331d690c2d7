#!/usr/bin/env bash
# Builds p2pstream and relay_bench and prints the relay-tree figures on loopback: per depth
# glass-to-glass p50/p95, join time and frames lost; the broadcaster's uplink against a star;
# recovery time after SIGKILL of a random inner relay (p50/p95 over KILLS kills).
# Usage: bench/relay/run.sh [build-dir]   (default: build)
#   env: NS="10 30 60" watchers per run, K=2 relay slots each, MAX_DIRECT=2, SECONDS_PER_RUN=20,
#        KILLS=10; BENCH_QUICK=1: N=10, 8 s, 3 kills (under 3 minutes).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  ns="${NS:-10}"; secs="${SECONDS_PER_RUN:-8}"; kills="${KILLS:-3}"
else
  ns="${NS:-10 30 60}"; secs="${SECONDS_PER_RUN:-20}"; kills="${KILLS:-10}"
fi
k="${K:-2}"; direct="${MAX_DIRECT:-2}"

if [ -z "${SKIP_BUILD:-}" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j2 --target p2pstream relay_bench >/dev/null
fi
p2p="$build/cli/p2pstream"
bench="$(cd "$build/bench/relay" && pwd)/relay_bench"

work="$(mktemp -d /tmp/relay-bench.XXXXXX)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" P2PSTREAM_PASSPHRASE="" NO_COLOR=1
export GST_REGISTRY="$work/gst-registry.bin"

seed() { printf '0x'; for _ in $(seq 32); do printf '%02x' "$1"; done; }
# relay_bench's accounts: the broadcaster has seed fill 17 (0x11), watcher i fill 0x80+i.
"$p2p" key import alice --seed "$(seed 17)" >/dev/null
"$p2p" profile set --name alice --account alice >/dev/null
alice="$("$p2p" key show alice --json | sed -n 's/.*"address": *"\([^"]*\)".*/\1/p')"
max=0; for n in $ns; do [ "$n" -gt "$max" ] && max="$n"; done
for i in $(seq 0 $((max - 1))); do
  "$p2p" key import "w$i" --seed "$(seed $((128 + i)))" >/dev/null
  "$p2p" profile set --name "w$i" --account "w$i" >/dev/null
  "$p2p" subscribe "$alice" --account "w$i" >/dev/null
done
stream="$("$p2p" schedule --title "relay bench" --start now --duration 2h --account alice)"

"$p2p" signal --listen 127.0.0.1:0 --max-watchers 1000 --max-conn-per-ip 200 >"$work/signal.out" 2>"$work/signal.err" &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/signal.out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$work/signal.out" | head -1)"
[ -n "$url" ] || { cat "$work/signal.err" >&2; exit 1; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); 384x216@15 VP8 300 kbit/s, K=$k, max-direct=$direct"
for n in $ns; do
  mkdir -p "$work/run$n"
  "$bench" run --signal "$url" --stream "$stream" --n "$n" --k "$k" --max-direct "$direct" \
    --seconds "$secs" --kills "$kills" --dir "$work/run$n"
done
echo "# targets: added latency per hop p50 <= 10 ms; recovery p95 <= 2 s; uplink <= max-direct x bitrate"
echo "# done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
