#!/usr/bin/env python3
"""Latency of `baton state update` (locked and --cas) and of claiming and
releasing ten paths, with real processes and the real binary.

  state-latency.py BATON [ROUNDS]

Prints medians (ms) measured in one run:
  1. one writer, nothing else: an update's latency, each mode;
  2. 16 writers x ROUNDS updates of one file: per-update latency and
     updates/s, each mode (the final count is checked: none lost);
  3. when each mode wins: a slow writer (its command thinks 200 ms) loops
     while a fast writer updates; the fast writer's latency, each mode,
     and how often the slow one had to rerun under --cas;
  4. `baton claim` of 10 paths + `baton release`, and `baton who`.
"""
import os, statistics, subprocess, sys, tempfile, threading, time

baton = os.path.abspath(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
INC = ["sh", "-c", "read n; echo $((n + 1))"]

def update(d, cas, cmd=INC, extra=()):
    args = [baton, "state", "update", *extra]
    if cas:
        args += ["--cas", "--attempts", "10000"]
    t = time.monotonic()
    subprocess.run(args + ["s.json", "--", *cmd], cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.monotonic() - t) * 1000

def med(xs):
    return statistics.median(xs)

print("1. uncontended update (ms, median of 200)")
for cas in (False, True):
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "s.json"), "w").write("0\n")
        xs = [update(d, cas) for _ in range(200)]
        print(f"   {'cas   ' if cas else 'locked'} {med(xs):6.2f}")

print(f"2. 16 writers x {rounds} updates of one file")
for cas in (False, True):
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "s.json"), "w").write("0\n")
        lat = []
        lock = threading.Lock()
        def writer():
            mine = [update(d, cas) for _ in range(rounds)]
            with lock:
                lat.extend(mine)
        t0 = time.monotonic()
        ts = [threading.Thread(target=writer) for _ in range(16)]
        for t in ts: t.start()
        for t in ts: t.join()
        took = time.monotonic() - t0
        final = int(open(os.path.join(d, "s.json")).read())
        assert final == 16 * rounds, final
        print(f"   {'cas   ' if cas else 'locked'} median {med(lat):7.2f} ms/update, "
              f"{16 * rounds / took:6.0f} updates/s, final {final}")

print("3. a slow writer (200 ms command) and a fast one: the fast one's latency")
SLOW = ["sh", "-c", "read n; sleep 0.2; echo $((n + 1))"]
for cas in (False, True):
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "s.json"), "w").write("0\n")
        stop = threading.Event()
        slow_runs = [0]
        def slow():
            while not stop.is_set():
                update(d, cas, SLOW)
                slow_runs[0] += 1
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.05)
        fast = []
        for _ in range(30):
            fast.append(update(d, cas))
            time.sleep(0.02)
        stop.set()
        t.join()
        print(f"   {'cas   ' if cas else 'locked'} fast writer median {med(fast):7.2f} ms "
              f"(slow writer finished {slow_runs[0]} updates meanwhile)")

print("4. claims (ms, median of 100)")
with tempfile.TemporaryDirectory() as d:
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    paths = [f"src/f{i}.rs" for i in range(10)]
    claim, release, who = [], [], []
    for _ in range(100):
        t = time.monotonic()
        subprocess.run([baton, "claim", "--id", "bench", *paths], cwd=d, check=True)
        t1 = time.monotonic()
        subprocess.run([baton, "who", "src/f3.rs"], cwd=d, stdout=subprocess.DEVNULL)
        t2 = time.monotonic()
        subprocess.run([baton, "release", "--id", "bench"], cwd=d, check=True)
        t3 = time.monotonic()
        claim.append((t1 - t) * 1000); who.append((t2 - t1) * 1000); release.append((t3 - t2) * 1000)
    print(f"   claim 10 paths {med(claim):6.2f}, who {med(who):6.2f}, release {med(release):6.2f}, "
          f"claim + release {med([c + r for c, r in zip(claim, release)]):6.2f}")
