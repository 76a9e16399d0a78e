#!/usr/bin/env bash
# The efficiency comparison of issue 5, in one sitting on this machine (batch 64 for every method):
#  1. full data, training cost only: every tower-running method for STEPS steps after WARMUP
#     warm-up steps (eval.skip; seconds per epoch extrapolated to the full epoch), plus cached
#     IISAN and ID trained to early stopping on the same data;
#  2. a fixed user subset (SUBSET users, seed 2024, the same for every method), every method
#     trained EPOCHS epochs with evaluation, for accuracy;
#  3. `iisan compare` over each set -> docs/compare/<name>-{full,subset}/.
#   DATASET=scientific bash scripts/bench/baselines.sh    (text tower, ../shared data)
#   DATASET=synthetic  bash scripts/bench/baselines.sh    (text + image towers, data/synthetic)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${DATASET:-scientific}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
SUBSET=${SUBSET:-300}
EPOCHS=${EPOCHS:-3}
OUT=${OUT:-runs/bench-$DATASET}
IISAN_FULL=${IISAN_FULL:-}   # an existing cached-IISAN run directory on the full data (optional)
ID_FULL=${ID_FULL:-}         # an existing ID run directory on the full data (optional)
BIN=./target/release/iisan
cargo build --release --quiet
bash scripts/fetch-models.sh >/dev/null
case $DATASET in
  scientific)
    DATA=../shared/data/amazon-scientific; CFG=configs/baselines/scientific.toml
    ENC=(--text-model models/minilm); IISAN_SETS=(--set 'model.iisan.modality="text"');;
  synthetic)
    DATA=data/synthetic; CFG=configs/baselines/synthetic.toml
    [ -f "$DATA/users.tsv" ] || $BIN data synth --out "$DATA"
    ENC=(--text-model models/minilm --image-model models/dinov2-small --image-size 112)
    IISAN_SETS=(--set 'model.iisan.modality="intra_inter"');;
  *) echo "DATASET must be scientific or synthetic" >&2; exit 2;;
esac
mkdir -p "$OUT"
train() { # name data cache extra-args...
  local name=$1 data=$2 cache=$3; shift 3
  if [ -f "$OUT/$name/summary.json" ]; then echo "== $name (done)"; return; fi
  echo "== $name ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
  $BIN train --config "$CFG" --quiet --set "data.dir=\"$data\"" --set "data.cache=\"$cache\"" \
    --set "run.dir=\"$OUT\"" --set "run.name=\"$name\"" "$@" | tail -n +3
}
# 1. full data
$BIN encode --dataset "$DATA" "${ENC[@]}" --out "cache/$DATASET" >/dev/null
FULL=()
for m in fft adapter lora bitfit iisan_uncached; do
  train "full-$m" "$DATA" "cache/$DATASET" --set "model.method=\"$m\"" "${IISAN_SETS[@]}" \
    --set train.epochs=1 --set "train.max_steps_per_epoch=$((STEPS + WARMUP))" \
    --set "train.warmup_steps=$WARMUP" --set eval.skip=true
  FULL+=("$OUT/full-$m")
done
if [ -z "$IISAN_FULL" ]; then
  train full-iisan "$DATA" "cache/$DATASET" --set 'model.method="iisan"' "${IISAN_SETS[@]}"
  IISAN_FULL=$OUT/full-iisan
fi
if [ -z "$ID_FULL" ]; then
  train full-id "$DATA" "cache/$DATASET" --set 'model.method="id"'
  ID_FULL=$OUT/full-id
fi
$BIN compare --runs "${FULL[@]}" "$IISAN_FULL" "$ID_FULL" --out "docs/compare/$DATASET-full"
# 2. user subset
SUB=data/subsets/$DATASET-$SUBSET
$BIN data subset --dataset "$DATA" --users "$SUBSET" --seed 2024 --out "$SUB"
$BIN encode --dataset "$SUB" "${ENC[@]}" --out "cache/$DATASET-$SUBSET" >/dev/null
RUNS=()
for m in fft adapter lora bitfit iisan_uncached iisan id; do
  train "subset-$m" "$SUB" "cache/$DATASET-$SUBSET" --set "model.method=\"$m\"" "${IISAN_SETS[@]}" \
    --set "train.epochs=$EPOCHS" --set eval.ks=[10,20]
  RUNS+=("$OUT/subset-$m")
done
$BIN compare --runs "${RUNS[@]}" --out "docs/compare/$DATASET-subset"
