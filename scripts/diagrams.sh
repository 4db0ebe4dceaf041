#!/usr/bin/env bash
# Draws every known-bad catalogued protocol's counterexample twice, as the
# simulator shrinks it (random strategy, first failing seed) and as the
# model checker finds it, into reports/diagrams/<protocol>-{sim,model}.svg.
# Usage: scripts/diagrams.sh   (rewrites reports/diagrams/)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p baton
baton=target/release/baton
out=reports/diagrams
rm -rf "$out"
mkdir -p "$out"
"$baton" sim --json --seeds 500 | python3 -c '
import json, sys
for line in sys.stdin:
    row = json.loads(line)
    if row.get("violation") and row["expected"] != "holds":
        print(row["scenario"], row["violation"]["replay"])
' | while read -r name token; do
    "$baton" sim --replay "$token" --svg "$out/$name-sim.svg" > /dev/null || true
    if "$baton" model --model "$name" --svg "$out/$name-model.svg" > /dev/null 2>&1; then
        echo "$name: $token (simulator and model)"
    else
        echo "$name: $token (simulator only)"
    fi
done
