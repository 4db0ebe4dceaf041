#!/usr/bin/env bash
# Long simulator runs, beyond what CI affords: N seeds (default 10,000) per
# catalogued scenario with random and PCT schedules, N bounded-exhaustive
# DFS schedules, and a long differential fidelity run against Linux.
# Exits non-zero if any outcome differs from its expectation.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-10000}
cargo build --release --quiet -p baton
baton=target/release/baton
"$baton" sim --seeds "$seeds"
"$baton" sim --strategy pct --seeds "$seeds"
"$baton" sim --strategy dfs --seeds "$seeds"
PROPTEST_CASES=$((seeds * 2)) cargo test --release --quiet -p baton-sim --test fidelity
