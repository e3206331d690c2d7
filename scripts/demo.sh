#!/usr/bin/env bash
# Installs the dependencies, builds p2pstream and runs a short demo on the
# embedded ledger: two accounts, a profile each, a scheduled stream, a
# subscription and the listing; then a live stream through the signalling
# server, recorded by the subscriber. It uses a throwaway home, not your real keys.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
bin="${BUILD_DIR:-$root/build}/cli/p2pstream"

demo_home="$(mktemp -d /tmp/p2pstream-demo-XXXXXX)"
export XDG_CONFIG_HOME="$demo_home/config" XDG_DATA_HOME="$demo_home/data" P2PSTREAM_PASSPHRASE=""
step() { printf '\n\033[1m$ p2pstream %s\033[0m\n' "$*"; "$bin" "$@"; }

step key new alice
step key new bob
step profile set --name Alice --surname Liddell --time-zone Europe/London
step profile set --name Bob --account bob
id="$("$bin" schedule --title "Friday jam" --start +30m --duration 1h --description "Live from the garage" -q)"
printf '\n\033[1m$ p2pstream schedule --title "Friday jam" --start +30m --duration 1h ...\033[0m\n%s\n' "$id"
step subscribe "$("$bin" key show alice --json | sed -n 's/.*"address": "\(.*\)".*/\1/p')" --account bob
step streams
step streams show "$id"
step profile --account bob
step ledger check

# Live: the signalling server admits alice as the broadcaster and bob as a subscriber; bob records
# 6 seconds of alice's test pattern without re-encoding.
live="$("$bin" schedule --title "Live now" --start now --duration 10m -q)"
sig_out="$demo_home/signal.out"
"$bin" signal --listen 127.0.0.1:0 -q >"$sig_out" &
sig_pid=$!
bc_pid=
trap 'kill $bc_pid $sig_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^listening on ' "$sig_out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$sig_out" | head -1)"
printf '\n\033[1m$ p2pstream signal --listen 127.0.0.1:0\033[0m\nlistening on %s\n' "$url"
printf '\033[1m$ p2pstream broadcast "%s" --signal %s --size 640x480 &\033[0m\n' "$live" "$url"
"$bin" broadcast "$live" --signal "$url" --size 640x480 -q &
bc_pid=$!
step watch "$live" --signal "$url" --account bob --output "$demo_home/bob.mkv" --duration 6
kill -INT "$bc_pid" 2>/dev/null || true
wait "$bc_pid" 2>/dev/null || true
printf '\n\033[1m$ gst-discoverer-1.0 bob.mkv\033[0m\n'
gst-discoverer-1.0 "$demo_home/bob.mkv" | grep -E 'Duration|video|audio|container' || true
printf '\nDemo data is in %s (remove it when done).\n' "$demo_home"
