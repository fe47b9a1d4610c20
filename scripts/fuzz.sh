#!/usr/bin/env bash
# Runs each fuzz target (tests/fuzz_targets) for a set time:
#     scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Panicking and hanging inputs are kept under tests/fuzz/<target>/ (the
# regression test, tests/fuzz_regressions.rs, replays them); an input that
# aborts the process is kept from target/fuzz/<target>.current.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf session config keymap crows)

cargo build --release --example fuzz || exit 2
status=0
for t in "${targets[@]}"; do
  target/release/examples/fuzz "$t" --seconds "$seconds"
  rc=$?
  if [ $rc -gt 128 ] && [ -f "target/fuzz/$t.current" ]; then
    kept="tests/fuzz/$t/abort-$(sha256sum "target/fuzz/$t.current" | cut -c1-12)"
    cp "target/fuzz/$t.current" "$kept"
    echo "fuzz $t: died with signal $((rc - 128)); input kept as $kept"
  fi
  [ $rc -ne 0 ] && status=1
done
exit $status
