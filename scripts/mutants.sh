#!/usr/bin/env bash
# mutants.sh [FILE...] -- mutation testing of baton's protocol modules with
# cargo-mutants (cargo install cargo-mutants): each mutant of FILE (default:
# the lock, stale, record, atomic, election, lease, fence, state, claims,
# commit and txn modules) is built and checked against the tests of
# baton-core and baton-sim (the simulator's catalogue included). Results in
# mutants.out/ (outcomes.json, caught.txt, missed.txt, unviable.txt);
# reports/mutants.md is written from them by hand, with each survivor's
# reason. MUTANTS_JOBS (default 1) runs several at once. The timeout is
# fixed, not scaled from the baseline: cargo-mutants times its baseline on
# the mutated package's tests alone (seconds), and would then kill the
# simulator's catalogue tests (a minute or two) and report every mutant as
# a timeout. Builds use the workspace's `mutants` profile (opt-level 1):
# unoptimised, the simulator's tests take minutes a mutant.
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(core/src/lock/*.rs core/src/stale.rs core/src/record.rs core/src/atomic.rs
         core/src/election.rs core/src/lease.rs core/src/fence.rs core/src/state.rs
         core/src/claims.rs core/src/commit.rs core/src/txn.rs core/src/env/handoff.rs)
fi
args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
exec cargo mutants "${args[@]}" --test-package baton-core,baton-sim \
  --profile mutants --jobs "${MUTANTS_JOBS:-1}" --timeout 300 --no-shuffle
