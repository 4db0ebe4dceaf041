#!/usr/bin/env bash
# etcd-failover.sh [ROUNDS] -- failover times of --backend etcd on a local
# three-member cluster (scripts/etcd-cluster.sh), medians over ROUNDS:
#  1. a lock holder's baton is SIGKILLed: time until a waiting baton's
#     command starts (bounded below by the lease TTL, 2 s here: etcd must
#     expire the dead holder's lease);
#  2. the etcd raft leader is SIGSTOPped: time for a new acquisition of an
#     uncontended lock to complete (a new raft leader must be elected).
# Needs a build (cargo build --release) and etcd.
set -euo pipefail
rounds=${1:-5}
B=${BATON:-$(cd "$(dirname "$0")/.." && pwd)/target/release/baton}
C="$(dirname "$0")/etcd-cluster.sh"
tmp=$(mktemp -d)
cleanup() { bash "$C" stop "$tmp/c" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
export BATON_ETCD_ENDPOINTS=$(bash "$C" start "$tmp/c" 24500)
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
leader() {
  for i in 0 1 2; do
    s=$(curl -s -X POST "http://127.0.0.1:$((24500 + 2 * i))/v3/maintenance/status" -d '{}' --max-time 1 || true)
    m=$(echo "$s" | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p'); l=$(echo "$s" | sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p')
    [ -n "$m" ] && [ "$m" = "$l" ] && { echo "$i"; return; }
  done
}
: > "$tmp/kill"; : > "$tmp/stop"
for r in $(seq 1 "$rounds"); do
  "$B" lock --backend etcd --etcd-ttl 2 "k$r" -- sleep 60 & holder=$!
  sleep 0.5
  ( "$B" lock --backend etcd --etcd-ttl 2 "k$r" -- sh -c "date +%s%N > $tmp/got" ) & waiter=$!
  sleep 0.5
  t0=$(now); kill -9 "$holder"; wait "$waiter"
  echo $(( ($(cat "$tmp/got") - t0) / 1000000 )) >> "$tmp/kill"
  l=$(leader); pid=$(cat "$tmp/c/m$l.pid")
  t0=$(now); kill -STOP "$pid"
  "$B" lock --backend etcd --etcd-ttl 4 "s$r" -- true
  echo $(( ($(now) - t0) / 1000000 )) >> "$tmp/stop"
  kill -CONT "$pid"; sleep 2
done
echo "holder's baton SIGKILLed (TTL 2 s): next holder's command after median $(median < "$tmp/kill") ms (all: $(tr '\n' ' ' < "$tmp/kill"))"
echo "etcd leader SIGSTOPped: an acquisition completes after median $(median < "$tmp/stop") ms (all: $(tr '\n' ' ' < "$tmp/stop"))"
