#!/usr/bin/env bash
# Python's overhead on the library API: Run.recommend on the same histories through Python
# (python/bench/recommend_batch.py, the installed wheel) and through the library in Rust
# (examples/recommend_batch.rs), alternating, ROUNDS rounds of REPEATS calls each; prints each
# round's medians and their ratio. Also the wheel's size.
#
# Usage: scripts/bench/python_overhead.sh RUN HISTORIES.txt [ROUNDS] [REPEATS]
#   PYTHON: an interpreter with the iisan wheel installed (default target/py-test/bin/python,
#   which scripts/test.sh makes).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=$1 HIST=$2 ROUNDS=${3:-3} REPEATS=${4:-7}
PY=${PYTHON:-target/py-test/bin/python}
cargo build --release --quiet --example recommend_batch
for r in $(seq 1 "$ROUNDS"); do
  rust=$(target/release/examples/recommend_batch "$RUN" "$HIST" "$REPEATS")
  py=$("$PY" python/bench/recommend_batch.py "$RUN" "$HIST" "$REPEATS")
  echo "$rust"
  echo "$py"
  a=$(echo "$rust" | sed -E 's/.*median ([0-9.]+) s.*/\1/')
  b=$(echo "$py" | sed -E 's/.*median ([0-9.]+) s.*/\1/')
  python3 -c "print(f'round $r: python / rust = {$b / $a:.3f}')"
done
for w in target/wheels-test/iisan-*.whl; do
  [ -f "$w" ] && echo "wheel $(basename "$w"): $(stat -c %s "$w") bytes"
done
