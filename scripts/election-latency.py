#!/usr/bin/env python3
"""Election latency with real processes: start four `baton elect` at once,
time the first `elected` event; SIGKILL the primary, time the successor's.
Prints medians over N rounds (default 20). Usage: election-latency.py BATON [N]"""
import json, os, signal, statistics, subprocess, sys, tempfile, threading, time, queue

baton, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20

def start(d, q, i):
    p = subprocess.Popen([baton, "elect", "--dir", d], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    def read():
        for line in p.stdout:
            q.put((i, time.monotonic(), json.loads(line)))
    threading.Thread(target=read, daemon=True).start()
    return p

first, failover = [], []
for _ in range(rounds):
    with tempfile.TemporaryDirectory() as d:
        q = queue.Queue()
        t0 = time.monotonic()
        procs = [start(d, q, i) for i in range(4)]
        while True:
            i, t, e = q.get(timeout=20)
            if e["event"] == "elected":
                first.append(t - t0)
                primary = i
                break
        time.sleep(0.2)
        t1 = time.monotonic()
        procs[primary].send_signal(signal.SIGKILL)
        while True:
            i, t, e = q.get(timeout=20)
            if e["event"] == "elected" and i != primary:
                failover.append(t - t1)
                break
        for p in procs:
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
            p.wait()

ms = lambda xs: f"{statistics.median(xs) * 1000:.2f} ms (min {min(xs) * 1000:.2f}, max {max(xs) * 1000:.2f})"
print(f"rounds: {rounds}")
print(f"start of 4 processes to first elected: median {ms(first)}")
print(f"SIGKILL of the primary to successor elected: median {ms(failover)}")
