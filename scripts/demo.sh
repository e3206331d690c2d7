#!/usr/bin/env bash
# Installs the dependencies, builds p2pstream and runs a short demo on the
# embedded ledger: two accounts, a profile each, a scheduled stream, a
# subscription, and the listing. It uses a throwaway home, not your real keys.
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
printf '\nDemo data is in %s (remove it when done).\n' "$demo_home"
