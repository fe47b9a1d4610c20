#!/bin/bash
# Aggregate decode tokens/s of a 4-column comparison, batched (the default)
# against round-robin (--no-batch), alternated so both see the same load.
# Usage: scripts/bench_compare_batch.sh [rounds]   (after cargo build --release)
set -euo pipefail
BIN="$(dirname "$0")/../target/release/lmscope"
P="Once upon a time, in a small village by the sea, there lived an old fisherman who"
for _ in $(seq "${1:-3}"); do
  for mode in batched no-batch; do
    extra=""
    [ "$mode" = no-batch ] && extra="--no-batch"
    "$BIN" compare "$P" --preset greedy --preset precise --preset balanced --preset creative \
      --seed 7 -n 64 --json $extra |
      python3 -c "import json,sys; v=json.load(sys.stdin); print('$mode', 'aggregate %.1f tok/s' % v['aggregate_tok_s'], 'tokens', [c['stats']['tokens'] for c in v['columns']])"
  done
done
