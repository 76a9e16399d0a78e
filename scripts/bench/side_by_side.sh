#!/usr/bin/env bash
# IISAN text-only on Amazon Scientific: this crate and the PyTorch reference (../shared/reference)
# trained one after the other on the same machine, same thread count, same data, same settings
# (batch 64, lr 1e-4 SAN / 2e-4 rest, patience 10, mask history), each to early stopping. The
# reference trains the text head's F at 2e-4, so ours is set to that too (our default is the
# authors' 5e-5: docs/MODEL.md section 5).
#   EPOCHS=100 THREADS=2 CACHE=cache/scientific bash scripts/bench/side_by_side.sh
# Writes /tmp/side-by-side/{ours,reference}.{log,json}; prints both summaries.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-100}
THREADS=${THREADS:-2}
CACHE=${CACHE:-cache/scientific}
SHARED=${SHARED:-../shared}
OUT=${OUT:-/tmp/side-by-side}
PY=${IISAN_REF_VENV:-/tmp/iisan-ref-venv}/bin/python
REF_CACHE=${REF_CACHE:-/tmp/iisan-ref-cache/text_cls.npy}
mkdir -p "$OUT"
cargo build --release --quiet
[ -x "$PY" ] || bash "$SHARED/reference/setup.sh"
[ -f "$REF_CACHE" ] || (cd "$SHARED/reference" && "$PY" build_cache.py --modality text --threads "$THREADS")
./target/release/iisan encode --dataset "$SHARED/data/amazon-scientific" \
  --text-model models/minilm --out "$CACHE" --batch 64
echo "== ours ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
./target/release/iisan train --config configs/iisan-scientific.toml \
  --set "data.cache=\"$CACHE\"" --set "train.epochs=$EPOCHS" --set "train.threads=$THREADS" \
  --set train.profile=true --set "run.dir=\"$OUT\"" --set 'run.name="ours"' \
  --set train.lr_groups.text_head=2e-4 \
  2>&1 | grep -v '^\s*$' | tee "$OUT/ours.log"
echo "== reference ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
(cd "$SHARED/reference" && "$PY" iisan_ref.py --modality text --text-cache "$REF_CACHE" \
  --epochs "$EPOCHS" --threads "$THREADS" --k 10,20 --out "$OUT/reference.json") \
  2>&1 | tee "$OUT/reference.log"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/ours/summary.json"))
ref = json.load(open(f"{out}/reference.json"))
print(json.dumps({"ours": {k: ours[k] for k in ("best_epoch", "epochs_run", "test", "efficiency")},
                  "reference_keys": list(ref)}, indent=1)[:4000])
PY
