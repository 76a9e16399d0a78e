#!/usr/bin/env bash
# The cost curve of larger text towers (BENCHMARKS.md, "Larger towers"): for each random-weight
# decoder layout (time and memory do not depend on the weights' values), on the synthetic
# default's 1,499 items:
#   1. encode the titles once (items/s, peak RSS)                       iisan encode
#   2. train cached text IISAN for EPOCHS epochs (s/epoch, peak RSS)    iisan train
#   3. time LoRA through the same tower (s/item forward + backward)     examples/lora_step.rs
# and append one row per layout to OUT/cost.tsv; then draw OUT/cost.svg
# (examples/cost_chart.rs). Folders, caches and runs are kept under OUT, so a rerun skips what
# is there.
# Usage: scripts/bench/tower_cost.sh OUT LAYOUT...   (e.g. smollm2-135m qwen2.5-0.5b qwen2.5-1.5b)
# Env: DEVICE (cpu, cuda; default cpu), TOWER_DTYPE (f32, bf16; default f32), EPOCHS (3),
#      LORA_BATCH (8), LORA_STEPS (3), IISAN_BIN, EXAMPLES (the folder of the built examples).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$(realpath -m "$1"); shift
DEVICE=${DEVICE:-cpu}; TOWER_DTYPE=${TOWER_DTYPE:-f32}; EPOCHS=${EPOCHS:-3}
LORA_BATCH=${LORA_BATCH:-8}; LORA_STEPS=${LORA_STEPS:-3}
B=${IISAN_BIN:-$PWD/target/release/iisan}
EX=${EXAMPLES:-$PWD/target/release/examples}   # lora_step and cost_chart (cargo build --release --examples)
mkdir -p "$OUT"
[ -d data/synthetic ] || $B data synth --out data/synthetic
[ -f "$OUT/cost.tsv" ] || printf 'layout\tparameters\tencode_items_per_s\tencode_peak_mib\tiisan_s_per_epoch\tiisan_peak_mib\tlora_s_per_item\tlora_peak_mib\tdevice\n' > "$OUT/cost.tsv"
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
for layout in "$@"; do
  tower=$OUT/towers/$layout
  [ -d "$tower" ] || $B models random --layout "$layout" --out "$tower" --tokenizer-from models/minilm
  cache=$OUT/caches/$layout
  echo "== $layout: encode" >&2
  $B encode --dataset data/synthetic --text-model "$tower" --out "$cache" --device "$DEVICE" \
    --tower-dtype "$TOWER_DTYPE" --quiet > "$OUT/$layout.encode.txt"
  enc_rate=$(grep -o '([0-9.]* items/s)' "$OUT/$layout.encode.txt" | tr -d '(' | cut -d' ' -f1)
  enc_peak=$(grep -o 'peak RSS [0-9]*' "$OUT/$layout.encode.txt" | cut -d' ' -f3)
  echo "== $layout: cached IISAN, $EPOCHS epochs" >&2
  run=runs/cost-$layout-$(date +%s)
  cat > "$OUT/$layout.toml" <<EOF
[data]
dir = "$PWD/data/synthetic"
cache = "$cache"
[model]
method = "iisan"
[model.iisan]
modality = "text"
[train]
epochs = $EPOCHS
patience = $EPOCHS
device = "$DEVICE"
EOF
  (cd "$OUT" && $B train --quiet --config "$layout.toml" --set "run.name=\"$(basename "$run")\"") > /dev/null
  s="$OUT/$run/summary.json"
  iisan_s=$(json "$s" "round(d['efficiency']['seconds_per_epoch'], 3)")
  iisan_peak=$(json "$s" "round(d['efficiency']['peak_rss_mib'])")
  echo "== $layout: LoRA, $LORA_STEPS steps of $LORA_BATCH titles" >&2
  "$EX/lora_step" "$tower" data/synthetic "$LORA_BATCH" "$LORA_STEPS" "$DEVICE" > "$OUT/$layout.lora.json"
  lora_s=$(json "$OUT/$layout.lora.json" "round(d['seconds_per_item'], 4)")
  lora_peak=$(json "$OUT/$layout.lora.json" "round(d['peak_rss_mib'])")
  params=$(json "$OUT/$layout.lora.json" "d['parameters']")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$layout" "$params" "$enc_rate" "$enc_peak" \
    "$iisan_s" "$iisan_peak" "$lora_s" "$lora_peak" "$DEVICE" >> "$OUT/cost.tsv"
  tail -1 "$OUT/cost.tsv"
done
[ -x "$EX/cost_chart" ] && "$EX/cost_chart" "$OUT/cost.tsv" "$OUT/cost.svg"
echo "wrote $OUT/cost.tsv and $OUT/cost.svg"
