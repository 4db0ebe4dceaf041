#!/usr/bin/env bash
# bench.sh -- runs every lock benchmark in one go and regenerates
# reports/bench.md and its SVG plots (scripts/bench_report.py). On a
# 2-vCPU machine it takes about 5 minutes; BENCH_QUICK=1 cuts the rounds.
#
# 1. criterion, uncontended: the kernel floors, std/fs2/fd-lock, baton's modes
# 2. contended, real processes: 2, 4, 16 workers (throughput, handoff, fairness)
# 3. election with 4 processes: first primary and failover, against a
#    `flock -o` leader; whole CLI per call: `baton lock F -- true` against
#    `flock F true`
# 4. syscalls per acquire+release (strace -c), when strace is installed
# 5. peers in other languages (Python filelock, Node proper-lockfile),
#    installed into a temp dir; one that cannot be installed is reported
#    as skipped with the reason
# 6. simulator calls/s and model states/s
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
quick=${BENCH_QUICK:-}
measure=3; rounds=3; calls=100
[ -n "$quick" ] && { measure=1; rounds=1; calls=30; }

cargo build --release -q -p baton -p baton-bench --examples
B=$PWD/target/release/baton

echo "== criterion (uncontended)" >&2
cargo bench -q -p baton-bench --bench lock -- --warm-up-time 1 --measurement-time "$measure" >&2
python3 - "$out/uncontended.json" <<'EOF'
import glob, json, os, sys
rows = []
for bench in glob.glob("target/criterion/*/*/new/benchmark.json"):
    meta = json.load(open(bench))
    est = json.load(open(os.path.join(os.path.dirname(bench), "estimates.json")))
    sample = json.load(open(os.path.join(os.path.dirname(bench), "sample.json")))
    per_iter = sorted(t / n for t, n in zip(sample["times"], sample["iters"]))
    rows.append({"group": meta["group_id"], "name": meta["function_id"],
                 "median_ns": est["median"]["point_estimate"],
                 "p99_ns": per_iter[min(len(per_iter) - 1, int(len(per_iter) * 0.99))],
                 "samples_ns": per_iter})
json.dump(rows, open(sys.argv[1], "w"))
EOF

echo "== contended processes" >&2
BENCH_ROUNDS=$rounds BENCH_JSON=$out/contended.jsonl cargo bench -q -p baton-bench --bench contended -- 2 4 16 >&2

echo "== election: first primary and failover" >&2
BENCH_ROUNDS=$((rounds * 3)) BENCH_JSON=$out/election.jsonl cargo bench -q -p baton-bench --bench election >&2

echo "== CLI per call" >&2
cli=$out/cli
mkdir -p "$cli"
(
  cd "$cli"
  : > f
  for i in $(seq 1 "$calls"); do
    s=$(date +%s%N); "$B" lock f -- true; echo $(( $(date +%s%N) - s )) >> baton.ns
    s=$(date +%s%N); flock f true; echo $(( $(date +%s%N) - s )) >> flock.ns
    s=$(date +%s%N); /bin/true; echo $(( $(date +%s%N) - s )) >> true.ns
  done
  if command -v strace >/dev/null; then
    strace -f -c -o baton.strace "$B" lock f -- true
    strace -f -c -o flock.strace flock f true
  fi
)

echo "== syscalls per acquire+release" >&2
if command -v strace >/dev/null; then
  for mode in kernel file; do
    strace -c -o "$out/loop-$mode.strace" target/release/examples/lock_loop "$mode" 1000 "$out/loop-$mode.json"
  done
fi

echo "== peers in other languages" >&2
peers=$out/peers
mkdir -p "$peers"
(
  cd "$peers"
  if python3 -m venv venv >/dev/null 2>&1 && venv/bin/pip install -q filelock >pip.log 2>&1; then
    venv/bin/python - > python.json <<'EOF' || echo '{"skipped": "the Python peer run failed"}' > python.json
import json, time, filelock
n = 2000
out = {}
for name, cls, path in [("filelock.FileLock", filelock.FileLock, "flock.lock"),
                        ("filelock.SoftFileLock", filelock.SoftFileLock, "soft.lock")]:
    # A path each: FileLock leaves its file behind, which SoftFileLock
    # would take for a held lock and wait on for ever.
    lock = cls(path)
    ts = []
    for _ in range(n):
        s = time.perf_counter_ns(); lock.acquire(); lock.release(); ts.append(time.perf_counter_ns() - s)
    ts.sort()
    out[name] = {"median_ns": ts[n // 2], "p99_ns": ts[int(n * 0.99)]}
print(json.dumps(out))
EOF
  else
    echo "{\"skipped\": \"pip install filelock failed: $(tail -1 pip.log 2>/dev/null | tr -d '"')\"}" > python.json
  fi
  if command -v npm >/dev/null && npm install -q --no-audit --no-fund proper-lockfile >npm.log 2>&1; then
    node - > node.json <<'EOF' || echo '{"skipped": "the Node peer run failed"}' > node.json
const lockfile = require('proper-lockfile');
const fs = require('fs');
fs.writeFileSync('n.txt', '');
(async () => {
  const n = 1000, ts = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const release = await lockfile.lock('n.txt');
    await release();
    ts.push(Number(process.hrtime.bigint() - s));
  }
  ts.sort((a, b) => a - b);
  console.log(JSON.stringify({ 'proper-lockfile': { median_ns: ts[n >> 1], p99_ns: ts[Math.floor(n * 0.99)] } }));
})();
EOF
  else
    echo "{\"skipped\": \"npm install proper-lockfile failed: $(tail -1 npm.log 2>/dev/null | tr -d '"')\"}" > node.json
  fi
)

echo "== simulator and models" >&2
"$B" --json sim --scenario baton-lock-kernel --seeds 300 > "$out/sim.jsonl" || true
"$B" --json model --model baton-lock-kernel > "$out/model.jsonl" || true

python3 scripts/bench_report.py "$out" reports
echo "wrote reports/bench.md" >&2
