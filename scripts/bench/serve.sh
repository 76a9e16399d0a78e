#!/usr/bin/env bash
# Load test of `iisan serve` on loopback (BENCHMARKS.md, "Serving"): starts the server on a free
# port, sends 10,000 (REQUESTS) POST /v1/recommend from 32 concurrent clients (5 % malformed: truncated
# JSON, an unknown id, k = 0), then the same with 2 % POST /v1/items (one new item each) mixed
# in, checks /health afterwards, and reports the server's peak RSS. The run directory is
# copied first, so the items the test adds never touch it.
# Usage: [SERVE_ARGS="--compute-threads 2"] [REQUESTS=10000] scripts/bench/serve.sh RUN [DATASET_DIR]
# (DATASET_DIR: whose users' histories are sent; default ../shared/data/amazon-scientific;
# REQUESTS per phase: fewer for slow configurations, e.g. the exact scan over 10^7 items).
# Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
run=${1:?usage: serve.sh RUN [DATASET_DIR]}
data=${2:-../shared/data/amazon-scientific}
cargo build --release --quiet --bin iisan --example loadgen
work=$(mktemp -d)
pid=""
# (the kill of a server already stopped fails: not the script's exit status)
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
cp -r "$run" "$work/run"
# the histories: each user's test history as the paper's preprocessing keeps it (users with at
# least 5 interactions; of the last 13, all but the last)
awk -F'\t' '{n = split($2, a, " "); if (n >= 5) { f = (n > 13) ? n - 12 : 1; s = a[f];
  for (i = f + 1; i < n; i++) s = s " " a[i]; print s } }' \
  "$data/users.tsv" > "$work/histories.txt"
head -n 2000 "$data/items.tsv" | cut -f2 | sed 's/^/new: /' > "$work/titles.txt"
./target/release/iisan serve "$work/run" --addr 127.0.0.1:0 ${SERVE_ARGS:-} > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out")
echo "server $pid at $url: $(head -1 "$work/serve.out")" >&2
load() { ./target/release/examples/loadgen --url "$url" --histories "$work/histories.txt" \
  --titles "$work/titles.txt" --requests ${REQUESTS:-10000} --clients 32 --malformed 0.05 "$@"; }
echo "## recommend only"; load --items 0 --seed 1
echo "## with POST /v1/items (2 %)"; load --items 0.02 --seed 2
echo "## afterwards"
curl -sf "$url/health"; echo
curl -sf "$url/info" | head -c 300; echo
echo "server peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MiB"}')"
kill -TERM $pid; wait $pid && echo "server stopped cleanly (exit 0)"
