#!/usr/bin/env bash
# The long storm (issue 9): STORM_WORKERS processes (default 16) loop
# `baton lock` in both modes and `baton elect` for STORM_SECS seconds
# (default 120) while a killer sends SIGKILL, SIGTERM and SIGSTOP/SIGCONT
# to them and their commands. Prints one line of figures, and what broke
# if anything did (exit 1). The bounded version runs in `cargo test`
# (cli/tests/storm.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export STORM_SECS="${STORM_SECS:-120}" STORM_WORKERS="${STORM_WORKERS:-16}"
cargo build --release -q -p baton
log="$(mktemp)"
status=0
cargo test --release -q -p baton --test storm storm_of_kills -- --nocapture >"$log" 2>&1 || status=$?
grep -E '^storm' "$log"
if [ "$status" -ne 0 ]; then
    sed -n '/panicked/,/^$/p' "$log"
fi
rm -f "$log"
exit "$status"
