#!/usr/bin/env bash
# Longer runs of the parser fuzz targets (issue 9): every parser of bytes
# baton reads (owner records, fence logs, /proc stat, mountinfo), replay
# tokens, and argument vectors (in-process and against the binary).
# CI runs them with proptest's default case counts; here with CASES each
# (default 100000; the binary test runs CASES/100).
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${CASES:-100000}"
PROPTEST_CASES="$cases" cargo test --release -q -p baton-core --lib fuzz
PROPTEST_CASES="$cases" cargo test --release -q -p baton-sim --test tokens
PROPTEST_CASES="$cases" cargo test --release -q -p baton --bin baton any_argument_vector
PROPTEST_CASES="$((cases / 100))" cargo test --release -q -p baton --test argv
