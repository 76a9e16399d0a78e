#!/usr/bin/env bash
# A peer comparison of the ID baseline with RecBole's SASRec on the same data and split, in one
# sitting (a benchmark, run by hand; results in BENCHMARKS.md):
#  1. `iisan data export recbole` of DATASET (default: the Amazon Scientific data);
#  2. iisan's ID baseline trained with the in-batch loss and with the full softmax
#     (configs/id-scientific.toml, `train.loss`); text IISAN over the MiniLM cache
#     (configs/iisan-scientific.toml): IISAN=cost (default) measures a step with each loss,
#     IISAN=train trains it with the full softmax, IISAN=0 leaves it out;
#  3. RecBole 1.2.1's SASRec with the same sizes and settings and cross-entropy over every item
#     (scripts/bench/recbole_peer.py), its targets checked against the export for every user;
#  4. test HR@10 / NDCG@10 under both masks, best / run epochs and seconds per epoch, side by side.
# RecBole runs in a virtual environment of its own (VENV, default /tmp/recbole-venv) with
# PyPI's torch; recbole_peer.py carries the shims RecBole 1.2.1 needs with numpy 2 and
# torch >= 2.6 (written there, not patched into RecBole).
#   bash scripts/bench/recbole_peer.sh      # EPOCHS=100 IISAN=cost STEPS=20 DATASET=../shared/data/amazon-scientific
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${DATASET:-../shared/data/amazon-scientific}
EPOCHS=${EPOCHS:-100}
IISAN=${IISAN:-cost}   # cost: IISAN's seconds per step with each loss; train: a whole run; 0: none
STEPS=${STEPS:-20}
VENV=${VENV:-/tmp/recbole-venv}
OUT=${OUT:-runs/peer}
B=./target/release/iisan
cargo build --release --quiet
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import recbole, torch" 2>/dev/null ||
  "$VENV/bin/pip" install --quiet "torch>=2.6" "recbole==1.2.1"
mkdir -p "$OUT"
NAME=$(basename "$DATASET" | tr -c 'A-Za-z0-9_\n' '_')
[ -f "$OUT/export/$NAME/$NAME.inter" ] ||
  $B data export recbole --dataset "$DATASET" --out "$OUT/export/$NAME"
train() { # run-name config extra-args...
  local name=$1 cfg=$2; shift 2
  if [ -f "$OUT/$name/summary.json" ]; then echo "== $name (done)"; return; fi
  echo "== $name ($(date -u +%FT%TZ))"
  $B train --config "$cfg" --quiet --set "data.dir=\"$DATASET\"" --set "run.dir=\"$OUT\"" \
    --set "run.name=\"$name\"" --set "train.epochs=$EPOCHS" "$@" >/dev/null
}
train peer-id-inbatch configs/id-scientific.toml --set 'train.loss="inbatch"'
train peer-id-full configs/id-scientific.toml --set 'train.loss="full"'
if [ "$IISAN" != 0 ]; then
  $B encode --dataset "$DATASET" --text-model models/minilm --out cache/scientific >/dev/null
fi
if [ "$IISAN" = train ]; then
  train peer-iisan-full configs/iisan-scientific.toml --set 'train.loss="full"'
elif [ "$IISAN" = cost ]; then
  # the cost of a step: one epoch capped at STEPS steps after one warm-up step, no evaluation
  for loss in inbatch full; do
    train "peer-iisan-cost-$loss" configs/iisan-scientific.toml --set "train.loss=\"$loss\"" \
      --set train.epochs=1 --set "train.max_steps_per_epoch=$((STEPS + 1))" \
      --set train.warmup_steps=1 --set eval.skip=true
  done
fi
if [ ! -f "$OUT/recbole.json" ]; then
  echo "== recbole SASRec ($(date -u +%FT%TZ))"
  # RecBole writes its logs, tensorboard files and checkpoints under the working directory
  (root=$PWD; cd "$OUT" && "$VENV/bin/python" "$root/scripts/bench/recbole_peer.py" export "$NAME" \
    recbole.json --epochs "$EPOCHS" > recbole.log 2>&1)
fi
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for name in ("peer-id-inbatch", "peer-id-full", "peer-iisan-full"):
    p = os.path.join(out, name, "summary.json")
    if not os.path.exists(p):
        continue
    s = json.load(open(p))
    t = s["test"]
    rows.append((f"iisan {name[5:]}", t["history"]["HR@10"], t["history"]["NDCG@10"], t["none"]["HR@10"],
                 t["none"]["NDCG@10"], f'{s["best_epoch"]}/{s["epochs_run"]}', s["efficiency"]["seconds_per_epoch"]))
r = json.load(open(os.path.join(out, "recbole.json")))
per_epoch = r["seconds_per_epoch"]
rows.append(("RecBole SASRec (CE)", r["history"]["HR@10"], r["history"]["NDCG@10"], r["none"]["HR@10"],
             r["none"]["NDCG@10"], f'{r["best_epoch"]}/{r["epochs_run"]}', per_epoch))
print("| model | HR@10 history | NDCG@10 history | HR@10 none | NDCG@10 none | best/run epochs | s/epoch |")
print("|---|---|---|---|---|---|---|")
for m, a, b, c, d, e, f in rows:
    print(f"| {m} | {a:.4f} | {b:.4f} | {c:.4f} | {d:.4f} | {e} | {f:.2f} |")
for loss in ("inbatch", "full"):
    p = os.path.join(out, f"peer-iisan-cost-{loss}", "summary.json")
    if os.path.exists(p):
        s = json.load(open(p))
        e, steps = s["efficiency"], -(-s["dataset"]["stats"]["users"] // 64)  # batch 64
        print(f"text IISAN, {loss}: {e['seconds_per_epoch'] / steps:.3f} s/step, "
              f"{e['seconds_per_epoch']:.2f} s/epoch ({steps} steps, extrapolated from a capped epoch), "
              f"training peak {e.get('train_peak_rss_mib') or e['peak_rss_mib']:.0f} MiB")
print(f"\nRecBole's own test report: {r['recbole_reported']}")
print(f"split check: {r['split_check']}")
PY
