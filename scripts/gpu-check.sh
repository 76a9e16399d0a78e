#!/usr/bin/env bash
# One prepared GPU check (docs/GPU.md), <= 10 minutes on one GPU; everything it measures lands in
# one output folder (at most 8 files: the device tool brings back no more):
#   gpu-check.log          every command and its output
#   device-check.json      a. the device path against the CPU path (Scientific batches) and the
#                             text tower on the device (f32 held to 1e-3; bf16 reported)
#   scientific.json        b. (PARTS="b e", a second run) cached IISAN on Scientific on the
#                             GPU, the CPU kernels' figure beside it: summary (s/epoch, eval s,
#                             test HR@10 / NDCG@10), the bf16-states evaluation
#   scientific-metrics.jsonl   its epochs
#   methods-check.log      e. (PARTS="e") every method's device path against its CPU path,
#                             MiniLM text tower with dropout off, 2 Scientific batches of 32,
#                             in f32 and in each of PRECISIONS' half precisions (the f32 CPU
#                             step against the device's mixed-precision step)
#   efficiency.md / .json  c. the paper's efficiency table at its scale: bert-base + ViT-B/16
#                             (random weights), batch 32, text + 224 px images, per method and
#                             per training precision (PRECISIONS, default "f32 f16": the
#                             authors' autocast + GradScaler is f16) s/epoch (extrapolated from
#                             timed steps), peak device memory and steps the loss scale skipped
#
#   families.md, cost.tsv / .svg   f. (PARTS="f", FAMILIES_TEST=the families_parity test
#                             binary) the decoder and CLIP-family parity fixtures on the
#                             device against transformers, and the cost curve of
#                             larger text towers (0.1 B to 7 B, random weights; docs/GPU.md)
# Usage (on the GPU machine, from the repository root):
#   IISAN_BIN=path/to/iisan MINILM=models/minilm SCIENTIFIC=path/to/amazon-scientific \
#     bash scripts/gpu-check.sh OUT
# Knobs: EPOCHS (b, default 40), EFF_STEPS (c, steps per method, default 6; WARMUP of them
# untimed, default 2), THREADS (8); DEVICE (cuda) and IMAGE_SIZE (224) exist for a dry run of
# the script on a CPU build with a small dataset (DEVICE=cpu IMAGE_SIZE=32).
set -uo pipefail
OUT="${1:-gpu-check}"
BIN="${IISAN_BIN:-target/release/iisan}"
MINILM="${MINILM:-models/minilm}"
SCI="${SCIENTIFIC:-../shared/data/amazon-scientific}"
EPOCHS="${EPOCHS:-40}"
EFF_STEPS="${EFF_STEPS:-6}"
THREADS="${THREADS:-8}"
DEVICE="${DEVICE:-cuda}"
IMAGE_SIZE="${IMAGE_SIZE:-224}"
WARMUP="${WARMUP:-2}"
# which parts, in this order of priority: a and c (both precisions, 12 runs of about 40 s on
# an H200) fill one 10-minute run; b and e are the second (PARTS="b e")
PARTS="${PARTS:-a c}"
DEADLINE="${DEADLINE:-540}"  # seconds: b is cut (its partial epochs kept) to end by then
STEP_LIMIT="${STEP_LIMIT:-60}"  # seconds at most per method and precision in c
PRECISIONS="${PRECISIONS:-f32 f16}"  # training precisions of c and e
W="${WORK:-/tmp/iisan-gpu-check}"
mkdir -p "$OUT" "$W"
LOG="$OUT/gpu-check.log"
: >"$LOG"

# The CUDA runtime libraries (cuBLAS, cuRAND, cudart 13) of the machine's PyTorch wheels.
if [ -z "${CUDA_LIBS:-}" ]; then
  CUDA_LIBS=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
fi
[ -n "$CUDA_LIBS" ] && export LD_LIBRARY_PATH="$CUDA_LIBS:${LD_LIBRARY_PATH:-}"

say() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
run() { echo "\$ $*" >>"$LOG"; "$@" >>"$LOG" 2>&1; }
elapsed() { echo $(( $(date +%s) - T0 )); }
want() { [[ " $PARTS " == *" $1 "* ]]; }
T0=$(date +%s)

say "machine"
run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run "$BIN" --version

SCI_SETS=(--set "data.dir=$SCI" --set "data.cache=$W/cache-sci" --set "train.threads=$THREADS"
  --set "model.towers.text_model=$MINILM")

# a. The device path against the CPU path, and the text tower on the device.
if want a; then
say "a. encode Scientific titles on the GPU (MiniLM, f32 and bf16)"
run "$BIN" encode --dataset "$SCI" --text-model "$MINILM" --out "$W/cache-sci" \
  --device "$DEVICE" --batch 256 --quiet
run "$BIN" encode --dataset "$SCI" --text-model "$MINILM" --out "$W/cache-sci-bf16" \
  --device "$DEVICE" --tower-dtype bf16 --batch 256 --quiet
say "a. check-device (3 batches, f32 tower) and the bf16 tower"
run "$BIN" check-device --config configs/iisan-scientific.toml "${SCI_SETS[@]}" \
  --device "$DEVICE" --batches 3 --tower-items 256 --json "$W/check-f32.json"
run "$BIN" check-device --config configs/iisan-scientific.toml "${SCI_SETS[@]}" \
  --device "$DEVICE" --batches 1 --tower-items 256 --tower-dtype bf16 --json "$W/check-bf16.json"
python3 - "$W/check-f32.json" "$W/check-bf16.json" >"$OUT/device-check.json" <<'PY'
import json, sys
def load(p):
    try: return json.load(open(p))
    except Exception as e: return {"error": str(e)}
print(json.dumps({"f32": load(sys.argv[1]), "bf16_towers": load(sys.argv[2])}, indent=1))
PY
say "a done at $(elapsed) s"
fi

# c. The paper's efficiency table at its scale.
if want c; then
say "c. random bert-base and ViT-B/16 folders"
run "$BIN" models random --layout bert-base --out "$W/bert-base" --tokenizer-from "$MINILM"
run "$BIN" models random --layout vit-b16 --out "$W/vit-b16"
run "$BIN" encode --dataset "$SCI" --text-model "$W/bert-base" --image-model "$W/vit-b16" \
  --image-size "$IMAGE_SIZE" --missing-images zero --out "$W/cache-paper" --device "$DEVICE" --batch 256 --quiet
EFF=(--set "data.dir=$SCI" --set "model.towers.text_model=$W/bert-base"
  --set "model.towers.image_model=$W/vit-b16" --set "model.towers.image_size=$IMAGE_SIZE"
  --set model.towers.missing_images=zero --set train.batch=32 --set "train.device=$DEVICE"
  --set train.epochs=1 --set "train.max_steps_per_epoch=$EFF_STEPS" --set "train.warmup_steps=$WARMUP"
  --set eval.skip=true --set "run.dir=$W/runs-eff" --set "train.threads=$THREADS"
  --set model.iisan.modality=intra_inter --set "model.iisan.text_taps=[0,2,4,6,8,10,12]"
  --set "model.iisan.image_taps=[0,2,4,6,8,10,12]" --set "data.cache=$W/cache-paper")
for p in $PRECISIONS; do
  for m in iisan iisan_uncached bitfit lora adapter fft; do
    say "c. $m in $p"
    # train.kernels=autograd: what a GPU runs anyway; lets a DEVICE=cpu dry run take half precision
    run timeout "$STEP_LIMIT" "$BIN" train --quiet "${EFF[@]}" --set "model.method=$m" \
      --set "train.precision=$p" --set train.kernels=autograd --set "run.name=$m-$p"
  done
done
python3 - "$W/runs-eff" "$OUT" $PRECISIONS <<'PY'
import json, os, sys
root, out, *precisions = sys.argv[1:]
paper = {"fft": (443, 47), "adapter": (380, 39), "lora": (350, 37), "bitfit": (None, None),
         "iisan_uncached": (None, None), "iisan": (22, 3)}
rows, lines = [], ["| method | precision | trainable | s/step | s/epoch (Scientific, batch 32) | peak device GiB | skipped steps | paper s/epoch | paper GB |",
                   "|---|---|---|---|---|---|---|---|---|"]
for m in ["fft", "adapter", "lora", "bitfit", "iisan_uncached", "iisan"]:
  for prec in precisions:
    p = os.path.join(root, f"{m}-{prec}", "summary.json")
    if not os.path.exists(p):
        lines.append(f"| {m} | {prec} | (no run) | | | | | | |"); continue
    s = json.load(open(p)); e = s["efficiency"]
    users = s["dataset"]["stats"]["users"]
    steps = -(-users // 32)
    spe = e["seconds_per_epoch"]; peak = e.get("train_peak_device_mib")
    rows.append({"method": m, "precision": prec, "summary": s})
    ps, pg = paper[m]
    lines.append(f"| {m} | {prec} | {e['trainable_params']:,} | {spe/steps:.3f} | {spe:.1f} | "
                 f"{(peak or 0)/1024:.2f} | {e.get('skipped_steps', 0)} | {ps or '-'} | {pg or '-'} |")
open(os.path.join(out, "efficiency.md"), "w").write("\n".join(lines) + "\n")
json.dump(rows, open(os.path.join(out, "efficiency.json"), "w"), indent=1)
print("\n".join(lines))
PY
cat "$OUT/efficiency.md" >>"$LOG"
say "c done at $(elapsed) s"
fi

# b. Cached IISAN on Scientific on the GPU, to early stopping or EPOCHS.
if want b; then
# the caches of a (an up-to-date cache is left as it is)
for c in "cache-sci f32" "cache-sci-bf16 bf16"; do
  set -- $c
  run "$BIN" encode --dataset "$SCI" --text-model "$MINILM" --out "$W/$1" \
    --device "$DEVICE" --tower-dtype "$2" --batch 256 --quiet
done
say "b. cached IISAN, Scientific, text (MiniLM), up to $EPOCHS epochs"
# e runs after b: leave it its 12 checks (about 2 minutes)
E_TIME=0; want e && E_TIME=150
LEFT=$(( DEADLINE - $(elapsed) - 20 - E_TIME ))
say "b. $LEFT s left for training"
run timeout "$LEFT" "$BIN" train --quiet --config configs/iisan-scientific.toml "${SCI_SETS[@]}" \
  --set "train.device=$DEVICE" --set "train.epochs=$EPOCHS" --set "run.dir=$W/runs" \
  --set run.name=sci-iisan
cp "$W/runs/sci-iisan/metrics.jsonl" "$OUT/scientific-metrics.jsonl" 2>/dev/null ||
  cp "$W/runs/.sci-iisan.partial/metrics.jsonl" "$OUT/scientific-metrics.jsonl" 2>/dev/null
# the trained model on states its towers computed in bf16 (same items, same taps)
cp -r "$W/runs/sci-iisan" "$W/runs/sci-iisan-bf16-states"
sed -i "s#cache-sci\"#cache-sci-bf16\"#" "$W/runs/sci-iisan-bf16-states/config.toml"
echo "\$ $BIN eval $W/runs/sci-iisan-bf16-states --json" >>"$LOG"
"$BIN" eval "$W/runs/sci-iisan-bf16-states" --json 2>>"$LOG" | tee -a "$LOG" >"$W/bf16-eval.json"
python3 - "$W/runs/sci-iisan/summary.json" "$W/bf16-eval.json" >"$OUT/scientific.json" <<'PY'
import json, sys
try: s = json.load(open(sys.argv[1]))
except Exception as e: s = {"error": str(e)}
try: b = json.load(open(sys.argv[2]))
except Exception as e: b = {"error": str(e)}
print(json.dumps({"summary": s, "test_on_bf16_states": b}, indent=1))
PY
say "b done at $(elapsed) s"
fi

# e. Every method's device path against its CPU path (the towers' dropout off: the device draws
# its own masks), MiniLM as the text tower. Not in the default PARTS: a separate short run.
if want e; then
say "e. every method on the device against the CPU path"
python3 - "$MINILM" "$W/minilm-nodrop" <<'PY'
import json, os, shutil, sys
src, dst = sys.argv[1:]
shutil.copytree(src, dst, dirs_exist_ok=True)
c = json.load(open(os.path.join(src, "config.json")))
c["hidden_dropout_prob"] = c["attention_probs_dropout_prob"] = 0.0
json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=1)
PY
for p in $PRECISIONS; do
  # f32 held to 2e-3; a half precision to its own limits (docs/GPU.md)
  tol=(); [ "$p" = f32 ] && tol=(--tolerance 2e-3)
  for m in fft adapter lora bitfit iisan_uncached id; do
    echo "== $m $p" >>"$OUT/methods-check.log"
    timeout 45 "$BIN" check-device --device "$DEVICE" --batches 2 "${tol[@]}" --precision "$p" \
      --tower-items 0 --set "data.dir=$SCI" --set "model.method=$m" --set train.batch=32 \
      --set "train.threads=$THREADS" --set "model.towers.text_model=$W/minilm-nodrop" \
      --set model.iisan.modality=text --set "model.iisan.text_taps=[0,1,2,3,4,5,6]" \
      >>"$OUT/methods-check.log" 2>&1
    echo "exit $?" >>"$OUT/methods-check.log"
  done
done
cat "$OUT/methods-check.log" >>"$LOG"
say "e done at $(elapsed) s"
fi

# f. The newer towers on the device: the parity fixtures (held to 1e-4 relative), then the
# cost curve: SmolLM2-135M, Qwen2.5-0.5B / 1.5B / 7B shapes, towers in bf16, encode, cached IISAN
# (3 epochs), LoRA through the tower. Not in the default PARTS: a separate run.
if want f; then
say "f. tower families on the device, the cost curve"
EX="${EXAMPLES:-target/release/examples}"
# the parity test binary of a --features cuda build (cargo test --release --features cuda
# --test families_parity --no-run prints its path)
IISAN_TEST_DEVICE="$DEVICE" "${FAMILIES_TEST:?the families_parity test binary}" --nocapture \
  --test-threads 1 >"$OUT/families.md" 2>&1
echo "exit $?" >>"$OUT/families.md"
cat "$OUT/families.md" >>"$LOG"
DEVICE="$DEVICE" TOWER_DTYPE=bf16 EPOCHS=3 IISAN_BIN="$BIN" EXAMPLES="$EX" timeout $((DEADLINE - $(elapsed))) \
  bash scripts/bench/tower_cost.sh "$W/cost" ${COST_LAYOUTS:-smollm2-135m qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b} >>"$LOG" 2>&1
cp "$W/cost/cost.tsv" "$W/cost/cost.svg" "$OUT/" 2>/dev/null
say "f done at $(elapsed) s"
fi
