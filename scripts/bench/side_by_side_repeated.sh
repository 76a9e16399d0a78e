#!/usr/bin/env bash
# Cached IISAN (text) on Amazon Scientific, this crate against the PyTorch reference, as several
# short runs that alternate (ours, reference, ours, reference, ...) in one sitting, so that a
# slow spell of a shared machine lands on both sides. Same settings as side_by_side.sh (batch
# 64, lr 1e-4 SAN / 2e-4 rest, same thread count). Prints the CPU and its vector flags, every
# epoch's training seconds, the median per side and their ratio (BENCHMARKS.md, "Cached IISAN vs the PyTorch reference in alternating runs").
#   REPEATS=5 EPOCHS=5 THREADS=2 bash scripts/bench/side_by_side_repeated.sh
# Needs what side_by_side.sh needs (it builds the reference's cache and ours when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${REPEATS:-5}
EPOCHS=${EPOCHS:-5}
THREADS=${THREADS:-2}
CACHE=${CACHE:-cache/scientific}
SHARED=${SHARED:-../shared}
OUT=${OUT:-/tmp/side-by-side-repeated}
PY=${IISAN_REF_VENV:-/tmp/iisan-ref-venv}/bin/python
REF_CACHE=${REF_CACHE:-/tmp/iisan-ref-cache/text_cls.npy}
rm -rf "$OUT" && mkdir -p "$OUT"
cargo build --release --quiet
[ -x "$PY" ] || bash "$SHARED/reference/setup.sh"
[ -f "$REF_CACHE" ] || (cd "$SHARED/reference" && "$PY" build_cache.py --modality text --threads "$THREADS")
[ -f "$CACHE/text.hsc" ] || ./target/release/iisan encode --dataset "$SHARED/data/amazon-scientific" \
  --text-model models/minilm --out "$CACHE" --batch 64

grep -m1 "model name" /proc/cpuinfo
echo "vector flags: $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni)$' | sort -u | tr '\n' ' ')"
echo "date: $(date -u +%FT%TZ)   binary: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
for r in $(seq 1 "$REPEATS"); do
  echo "== round $r/$REPEATS: ours, then the reference (load $(cut -d' ' -f1-3 /proc/loadavg))"
  ./target/release/iisan train --config configs/iisan-scientific.toml \
    --set "data.cache=\"$CACHE\"" --set "train.epochs=$EPOCHS" --set "train.threads=$THREADS" \
    --set "run.dir=\"$OUT\"" --set "run.name=\"ours-$r\"" --set train.lr_groups.text_head=2e-4 \
    >"$OUT/ours-$r.log" 2>&1
  (cd "$SHARED/reference" && "$PY" iisan_ref.py --modality text --text-cache "$REF_CACHE" \
    --epochs "$EPOCHS" --threads "$THREADS" --k 10,20 --out "$OUT/reference-$r.json") \
    >"$OUT/reference-$r.log" 2>&1
done
python3 - "$OUT" "$REPEATS" <<'PY'
import json, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
ours, ref = [], []
for r in range(1, repeats + 1):
    o = [json.loads(l)["train_seconds"] for l in open(f"{out}/ours-{r}/metrics.jsonl")]
    p = [e["train_s"] for e in json.load(open(f"{out}/reference-{r}.json"))["epochs"]]
    print(f"round {r}: ours {' '.join(f'{x:.2f}' for x in o)} | reference {' '.join(f'{x:.2f}' for x in p)}"
          f" | medians {statistics.median(o):.2f} / {statistics.median(p):.2f}")
    ours += o
    ref += p
mo, mr = statistics.median(ours), statistics.median(ref)
print(f"| median s/epoch over {len(ours)} epochs each | ours {mo:.2f} | reference {mr:.2f} | "
      f"ratio **{mo / mr:.2f}** | (means {statistics.mean(ours):.2f} / {statistics.mean(ref):.2f}) |")
PY
