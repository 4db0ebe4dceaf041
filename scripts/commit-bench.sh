#!/usr/bin/env bash
# commit-bench.sh [RUNS] -- median wall time of one scoped commit (one file)
# by `baton commit`, by `baton commit` through git's plumbing only
# (BATON_GIT_INPROCESS=0), and by `git add` + `git commit`, interleaved, in a
# 10-file and a 5,000-file repository; then 8 concurrent `baton txn` on
# disjoint scopes (each CMD sleeping 200 ms) against the same 8 through one
# global lock (`baton lock`). Needs a release build (cargo build --release).
set -euo pipefail
runs=${1:-20}
B=${BATON:-$(cd "$(dirname "$0")/.." && pwd)/target/release/baton}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Bash's own clock: a `date` process per reading would add its start to
# every figure alike and pull every ratio toward 1.
ms() { local t=${EPOCHREALTIME/./}; echo $(( (t - $1) / 1000 )).$(( (t - $1) / 100 % 10 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
setup() { # DIR NFILES
  rm -rf "$1"; mkdir -p "$1"; cd "$1"; git init -q -b main
  git config user.name b; git config user.email b@b; git config commit.gpgSign false
  for i in $(seq 1 "$2"); do d=f/d$((i/100)); mkdir -p "$d"; echo "$i" > "$d/f$i.txt"; done
  echo 0 > a.txt; git add -A; git commit -qm init; git status --porcelain >/dev/null
}
for n in 10 5000; do
  setup "$tmp/r$n" "$n"
  : > "$tmp/b"; : > "$tmp/p"; : > "$tmp/g"
  for i in $(seq 1 "$runs"); do
    echo "b$i" >> a.txt; s=${EPOCHREALTIME/./}; "$B" commit -m "b $i" a.txt >/dev/null; ms "$s" >> "$tmp/b"
    echo "p$i" >> a.txt; s=${EPOCHREALTIME/./}; BATON_GIT_INPROCESS=0 "$B" commit -m "p $i" a.txt >/dev/null; ms "$s" >> "$tmp/p"
    echo "g$i" >> a.txt; s=${EPOCHREALTIME/./}; git add a.txt && git commit -qm "g $i"; ms "$s" >> "$tmp/g"
  done
  b=$(median < "$tmp/b"); p=$(median < "$tmp/p"); g=$(median < "$tmp/g")
  echo "files=$n  baton commit median ${b} ms (plumbing only ${p} ms)  git add+commit median ${g} ms  ratio $(echo "scale=2; $b / $g" | bc) (plumbing only $(echo "scale=2; $p / $g" | bc))"
done
setup "$tmp/par" 10
for i in 1 2 3 4 5 6 7 8; do echo 0 > "t$i.txt"; done; git add -A; git commit -qm scopes
s=${EPOCHREALTIME/./}
for i in 1 2 3 4 5 6 7 8; do "$B" txn -w 60 --scope "t$i.txt" -m "t$i" -- sh -c "sleep 0.2; echo x >> t$i.txt" >/dev/null & done; wait
par=$(ms "$s")
s=${EPOCHREALTIME/./}
for i in 1 2 3 4 5 6 7 8; do "$B" lock -w 60 .git/global-commit -- sh -c "sleep 0.2; echo y >> t$i.txt; git add t$i.txt && git commit -qm g$i" >/dev/null & done; wait
glob=$(ms "$s")
echo "8 txns, disjoint scopes, 200 ms each: ${par} ms; through one global lock: ${glob} ms; speed-up $(echo "scale=2; $glob / $par" | bc)"
