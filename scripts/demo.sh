#!/usr/bin/env bash
# The README's main job on the embedded synthetic default: build, generate the data (idempotent),
# train, print the metrics table. Extra arguments go to `iisan train` (e.g. --set train.epochs=5).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
./target/release/iisan data synth --out data/synthetic
./target/release/iisan train --config configs/quickstart.toml "$@"
