#!/usr/bin/env bash
# The cold-start table of BENCHMARKS.md (docs/COLD-START.md): 10 % of the items made cold
# (seed 2024) on the synthetic default (text + image) and on Scientific (text); IISAN and the
# ID baseline trained to early stopping on each; test HR@10 / NDCG@10 on warm and cold targets.
# Usage: scripts/bench/cold-start.sh [synthetic|scientific|all]   (from the repository root,
# after `cargo build --release` and scripts/fetch-models.sh). Writes runs/cold-*/ and prints
# the tables; an existing cold dataset, cache or run is reused, not overwritten.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=./target/release/iisan
which=${1:-all}
stamp=$(date +%Y%m%d-%H%M%S)

cold() { # name source-dataset
  [ -d "data/$1-cold" ] || $B data split-cold --dataset "$2" --frac 0.1 --seed 2024 --out "data/$1-cold"
}
run() { # run-name config [--set ...]
  local name=$1 cfg=$2; shift 2
  [ -d "runs/$name" ] || $B train --quiet --config "$cfg" --set "run.name=\"$name\"" "$@"
}
table() { # dataset-name run...
  local d=$1; shift
  for r in "$@"; do
    echo "### $r"
    $B eval "runs/$r" --ks 10 --cold-items "data/$d-cold/cold_items.txt"
  done
}

if [ "$which" = synthetic ] || [ "$which" = all ]; then
  cold synthetic data/synthetic
  $B encode --dataset data/synthetic-cold --text-model models/minilm \
    --image-model models/dinov2-small --image-size 112 --out cache/synthetic-cold
  d='data.dir="data/synthetic-cold"'
  run cold-synthetic-iisan configs/iisan-synthetic.toml --set "$d" --set 'data.cache="cache/synthetic-cold"'
  run cold-synthetic-id configs/quickstart.toml --set "$d"
  table synthetic cold-synthetic-iisan cold-synthetic-id
fi
if [ "$which" = scientific ] || [ "$which" = all ]; then
  cold scientific ../shared/data/amazon-scientific
  $B encode --dataset data/scientific-cold --text-model models/minilm --out cache/scientific-cold
  d='data.dir="data/scientific-cold"'
  run cold-scientific-iisan configs/iisan-scientific.toml --set "$d" --set 'data.cache="cache/scientific-cold"'
  run cold-scientific-id configs/id-scientific.toml --set "$d"
  table scientific cold-scientific-iisan cold-scientific-id
fi
