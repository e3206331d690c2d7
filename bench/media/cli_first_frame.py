#!/usr/bin/env python3
"""bench/media/cli_first_frame.py: time from starting `p2pstream watch` to its first decoded frame,
the whole CLI path: a real `p2pstream signal` on 127.0.0.1, challenge auth and the subscription check
on the embedded ledger, against a `p2pstream broadcast` that is already running (640x480@30).

  cli_first_frame.py P2PSTREAM_BIN [--codec vp8|h264] [--runs 10] [--fresh-dtls-key]

Per run: process start -> "watching ..." on stderr (CLI start-up: ledger, key, signalling client),
plus the watcher's own first_frame_ms (its first --stats=json line that has one). A throwaway home;
every process is stopped at the end.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary, args = sys.argv[1], sys.argv[2:]
    codec, runs, fresh = "vp8", 10, False
    while args:
        a = args.pop(0)
        if a == "--codec":
            codec = args.pop(0)
        elif a == "--runs":
            runs = int(args.pop(0))
        elif a == "--fresh-dtls-key":
            fresh = True
        else:
            sys.exit(f"cli_first_frame.py: unknown option {a}")
    home = tempfile.mkdtemp(prefix="p2pstream-bench-ff-")
    env = dict(os.environ, XDG_CONFIG_HOME=home + "/config", XDG_DATA_HOME=home + "/data", P2PSTREAM_PASSPHRASE="")
    procs = []

    def run(*a):
        return subprocess.run([binary, *a], env=env, capture_output=True, text=True, check=True).stdout

    try:
        run("key", "new", "alice")
        run("key", "new", "bob")
        run("profile", "set", "--name", "Alice")
        run("profile", "set", "--name", "Bob", "--account", "bob")
        alice = json.loads(run("key", "show", "alice", "--json"))["address"]
        run("subscribe", alice, "--account", "bob")
        stream = run("schedule", "--title", "bench", "--start", "now", "--duration", "1h", "-q").strip()
        sig = subprocess.Popen([binary, "signal", "--listen", "127.0.0.1:0", "-q"], env=env, stdout=subprocess.PIPE, text=True)
        procs.append(sig)
        url = sig.stdout.readline().split()[-1]
        bc = subprocess.Popen([binary, "broadcast", stream, "--signal", url, "--size", "640x480", "--video", codec, "-q"], env=env)
        procs.append(bc)
        time.sleep(3)  # broadcasting (and its DTLS key stored) before the first watch
        totals, cli_parts, watcher_parts = [], [], []
        for i in range(runs):
            cmd = [binary, "watch", stream, "--signal", url, "--account", "bob", "--stats=json", "--null", "--duration", "2"]
            if fresh:
                cmd.append("--fresh-dtls-key")
            t0 = time.monotonic()
            w = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            started = []

            def read_err():
                for line in w.stderr:
                    if not started and line.startswith("watching "):
                        started.append(time.monotonic())

            reader = threading.Thread(target=read_err)
            reader.start()
            first = None
            for line in w.stdout:
                j = json.loads(line)
                if first is None and j.get("first_frame_ms") is not None:
                    first = float(j["first_frame_ms"])
            w.wait()
            reader.join()
            if first is None or not started:
                print(f"  run {i}: no frame (exit {w.returncode})")
                continue
            cli = (started[0] - t0) * 1000
            totals.append(cli + first)
            cli_parts.append(cli)
            watcher_parts.append(first)
            if os.environ.get("BENCH_VERBOSE"):
                print(f"  run {i}: start-up {cli:.0f} ms + watcher {first:.0f} ms = {cli + first:.0f} ms")
        if not totals:
            sys.exit("cli_first_frame.py: no run got a frame")
        print(
            f"cli-first-frame codec={codec} dtls_key={'fresh' if fresh else 'stored'} runs={len(totals)} "
            f"median={statistics.median(totals):.0f}ms min={min(totals):.0f}ms max={max(totals):.0f}ms "
            f"(medians: CLI start-up {statistics.median(cli_parts):.0f}ms, watcher start->frame "
            f"{statistics.median(watcher_parts):.0f}ms)"
        )
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(2)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
