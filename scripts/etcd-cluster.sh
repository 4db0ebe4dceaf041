#!/usr/bin/env bash
# etcd-cluster.sh start DIR [BASE_PORT] | stop DIR | endpoints DIR
#
# A three-member etcd cluster on loopback, for baton's etcd backend and its
# tests: member i (0..2) serves clients on BASE_PORT+2i and peers on
# BASE_PORT+2i+1 (BASE_PORT defaults to 23790), keeps its data and log in
# DIR/mI, and its pid in DIR/mI.pid. `start` returns once every member
# answers /health; `endpoints` prints the client URLs, comma-separated (what
# --endpoints and BATON_ETCD_ENDPOINTS take); `stop` kills the members and
# removes what `start` made in DIR (and DIR, if that leaves it empty):
# never anything else a mistyped DIR may hold. Needs etcd (Debian:
# apt-get install etcd-server).
set -euo pipefail
cmd=${1:?usage: etcd-cluster.sh start|stop|endpoints DIR [BASE_PORT]}
dir=${2:?a directory}
base=${3:-23790}

endpoints() {
  local b
  b=$(cat "$dir/base")
  echo "http://127.0.0.1:$b,http://127.0.0.1:$((b + 2)),http://127.0.0.1:$((b + 4))"
}

case "$cmd" in
start)
  command -v etcd >/dev/null || { echo "etcd-cluster.sh: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
  mkdir -p "$dir"
  echo "$base" > "$dir/base"
  cluster=""
  for i in 0 1 2; do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 2 * i + 1))"
  done
  for i in 0 1 2; do
    client=$((base + 2 * i)); peer=$((base + 2 * i + 1))
    # Short heartbeats and election timeouts: failover within a second or
    # two, so the fault tests are quick.
    etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "baton-$$" \
      --heartbeat-interval 100 --election-timeout 1000 \
      > "$dir/m$i.log" 2>&1 &
    echo $! > "$dir/m$i.pid"
  done
  for _ in $(seq 1 100); do
    healthy=0
    for i in 0 1 2; do
      curl -fsS "http://127.0.0.1:$((base + 2 * i))/health" 2>/dev/null | grep -q '"true"' && healthy=$((healthy + 1))
    done
    [ "$healthy" = 3 ] && { endpoints; exit 0; }
    sleep 0.1
  done
  echo "etcd-cluster.sh: the cluster did not become healthy in 10 s; logs in $dir" >&2
  exit 1
  ;;
stop)
  for i in 0 1 2; do
    [ -f "$dir/m$i.pid" ] && kill -CONT "$(cat "$dir/m$i.pid")" 2>/dev/null || true
    [ -f "$dir/m$i.pid" ] && kill -9 "$(cat "$dir/m$i.pid")" 2>/dev/null || true
    # A member's data directory is etcd's (it holds member/); anything
    # else by that name is left alone.
    if [ -d "$dir/m$i/member" ] && [ ! -L "$dir/m$i" ]; then rm -rf "$dir/m$i"; fi
    rm -f "$dir/m$i.pid" "$dir/m$i.log"
  done
  rm -f "$dir/base"
  rmdir "$dir" 2>/dev/null || true
  ;;
endpoints)
  endpoints
  ;;
*)
  echo "etcd-cluster.sh: unknown command $cmd" >&2
  exit 2
  ;;
esac
