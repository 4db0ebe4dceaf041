#!/usr/bin/env bash
# 8 processes each add 1 to a counter file 100 times: first with no lock,
# then through `baton lock` in each mode. Without a lock, updates are lost;
# with it, the count is exactly 800. Exits non-zero if a locked run is not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p baton
baton="$PWD/target/release/baton"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

increment='read n < counter; echo $((n + 1)) > counter'
count() {
  # A fresh directory per run: a kernel-mode sidecar is never removed, and
  # exclusive-file mode refuses to take one over.
  mkdir "$1" && cd "$1" && shift
  echo 0 > counter
  for _ in 1 2 3 4 5 6 7 8; do
    ( for _ in $(seq 100); do "$@"; done ) &
  done
  wait
  cat counter
}

printf '%-32s %s of 800\n' "no lock:" "$(count none sh -c "$increment")"
status=0
for mode in kernel file; do
  got=$(count "$mode" "$baton" lock --mode "$mode" counter -- sh -c "$increment")
  printf '%-32s %s of 800\n' "baton lock --mode $mode:" "$got"
  [ "$got" = 800 ] || status=1
done
exit "$status"
