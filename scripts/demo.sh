#!/usr/bin/env bash
# The README's main job on the embedded synthetic default, from a fresh clone: build, fetch the
# two towers, generate the synthetic multimodal data, encode the hidden-state caches once, train
# IISAN (text + image) and the ID-based SASRec baseline, and print their comparison table.
# Every step is idempotent except training (each run gets a new run directory).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building iisan (a first build takes a few minutes; cargo reports its progress)" >&2
cargo build --release
bash scripts/fetch-models.sh
B=./target/release/iisan
$B data synth --out data/synthetic
$B encode --dataset data/synthetic --text-model models/minilm --image-model models/dinov2-small \
  --image-size 112 --out cache/synthetic
stamp=$(date +%Y%m%d-%H%M%S)
$B train --config configs/iisan-synthetic.toml --set run.name=\"demo-iisan-$stamp\" "$@"
$B train --config configs/quickstart.toml --set run.name=\"demo-id-$stamp\" "$@"
echo
echo "Comparison (test set, synthetic data):"
$B report --ks 10,20 "runs/demo-iisan-$stamp" "runs/demo-id-$stamp"
