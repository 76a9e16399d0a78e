#!/usr/bin/env bash
# The efficiency comparison of the baselines, in one sitting on this machine (batch 64 for every method):
#  1. full data, training cost only, the same protocol for every method: one epoch capped at
#     STEPS steps after WARMUP warm-up steps (eval.skip; seconds per epoch extrapolated to the
#     full epoch where capped; peak memory = training footprint);
#  2. a fixed user subset (SUBSET users, seed 2024, the same for every method), every method
#     trained EPOCHS epochs with evaluation, for accuracy;
#  3. `iisan compare` over each set -> docs/compare/<name>-{full,subset}/.
#   DATASET=scientific bash scripts/bench/baselines.sh    (text tower, ../shared data)
#   DATASET=synthetic  bash scripts/bench/baselines.sh    (text + image towers, data/synthetic)
#   METHODS="fft adapter lora bitfit" COST_ONLY=1 ...      (part 1 only, for those methods)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${DATASET:-scientific}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
SUBSET=${SUBSET:-300}
EPOCHS=${EPOCHS:-3}
OUT=${OUT:-runs/bench-$DATASET}
METHODS=${METHODS:-fft adapter lora bitfit iisan_uncached iisan id}
COST_ONLY=${COST_ONLY:-0}
BIN=${BIN:-./target/release/iisan}   # another binary to compare (e.g. a build of an older commit)
cargo build --release --quiet
bash scripts/fetch-models.sh >/dev/null
case $DATASET in
  scientific)
    DATA=../shared/data/amazon-scientific; CFG=configs/baselines/scientific.toml
    ENC=(--text-model models/minilm); IISAN_SETS=(--set 'model.iisan.modality="text"')
    CACHE=cache/scientific;;
  synthetic)
    # images at 56 px (4 x 4 patches) for every method, cached IISAN included: at 112 px one
    # step through both towers takes over a minute on 2 cores
    DATA=data/synthetic; CFG=configs/baselines/synthetic.toml
    [ -f "$DATA/users.tsv" ] || $BIN data synth --out "$DATA"
    ENC=(--text-model models/minilm --image-model models/dinov2-small --image-size 56)
    IISAN_SETS=(--set 'model.iisan.modality="intra_inter"')
    CACHE=cache/synthetic-56;;
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
$BIN encode --dataset "$DATA" "${ENC[@]}" --out "$CACHE" >/dev/null
FULL=()
for m in $METHODS; do
  case $m in iisan|id) CAP=0;; *) CAP=$((STEPS + WARMUP));; esac   # 0 = the whole epoch
  train "cost-$m" "$DATA" "$CACHE" --set "model.method=\"$m\"" "${IISAN_SETS[@]}" \
    --set train.epochs=1 --set "train.max_steps_per_epoch=$CAP" \
    --set "train.warmup_steps=$WARMUP" --set eval.skip=true
  FULL+=("$OUT/cost-$m")
done
if [ "$COST_ONLY" = 1 ]; then $BIN compare --runs "${FULL[@]}" --out "$OUT/compare"; exit 0; fi
$BIN compare --runs "${FULL[@]}" --out "docs/compare/$DATASET-full"
# 2. user subset
SUB=data/subsets/$DATASET-$SUBSET
$BIN data subset --dataset "$DATA" --users "$SUBSET" --seed 2024 --out "$SUB"
$BIN encode --dataset "$SUB" "${ENC[@]}" --out "$CACHE-subset-$SUBSET" >/dev/null
RUNS=()
for m in $METHODS; do
  train "subset-$m" "$SUB" "$CACHE-subset-$SUBSET" --set "model.method=\"$m\"" "${IISAN_SETS[@]}" \
    --set "train.epochs=$EPOCHS" --set eval.ks=[10,20]
  RUNS+=("$OUT/subset-$m")
done
$BIN compare --runs "${RUNS[@]}" --out "docs/compare/$DATASET-subset"
