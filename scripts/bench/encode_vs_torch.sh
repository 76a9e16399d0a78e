#!/usr/bin/env bash
# Encoding throughput and peak RSS, `iisan encode` against PyTorch (transformers) in one sitting:
# text (MiniLM-L6, every Scientific title, batch 64) and images (DINOv2-S/14 on the synthetic
# dataset at 112 and 224 px, batch 32), 2 threads each. Prints one markdown row per workload
# and the CPU's model and vector flags (BENCHMARKS.md, "Encoding vs PyTorch").
#
#   bash scripts/bench/encode_vs_torch.sh        # PY=/tmp/iisan-ref-venv/bin/python BIN=...
#
# Needs: models/ (scripts/fetch-models.sh), data/synthetic (`iisan data synth --out
# data/synthetic`), the reference's venv (../shared/reference/setup.sh) for PyTorch.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/tmp/iisan-ref-venv/bin/python}
BIN=${BIN:-target/release/iisan}
SCI=${SCI:-../shared/data/amazon-scientific}
SYN=${SYN:-data/synthetic}
THREADS=${THREADS:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || cargo build --release
export RAYON_NUM_THREADS=$THREADS

grep -m1 "model name" /proc/cpuinfo
echo "vector flags: $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni)$' | sort -u | tr '\n' ' ')"
echo "date: $(date -u +%FT%TZ)   binary: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"

# ours: items/s as `iisan encode` reports it (the model load excluded, as in the PyTorch script)
# and peak RSS in KiB, for one fresh cache
ours() {
  local out=$WORK/c$RANDOM
  /usr/bin/time -f "%M" -o "$WORK/time" "$BIN" encode --batch "$@" --out "$out" >"$WORK/log" 2>&1
  rm -rf "$out"
  echo "$(sed -nE 's/.*\(([0-9.]+) items\/s\).*/\1/p' "$WORK/log" | tail -1) $(cat "$WORK/time")"
}
# PyTorch: the script prints "... = X items/s, ..., peak RSS Y MiB"
torch() {
  "$PY" scripts/bench/torch_encode.py --threads "$THREADS" "$@" 2>/dev/null | tail -1 |
    sed -E 's/.*= ([0-9.]+) items\/s.*peak RSS ([0-9]+) MiB.*/\1 \2/'
}
row() { # label, ours (items/s, KiB), PyTorch (items/s, MiB)
  awk -v l="$1" -v o="$2" -v kb="$3" -v t="$4" -v mib="$5" 'BEGIN {
    printf "| %s | %.1f | %.1f | **%.2f** | %.0f MiB | %s MiB |\n", l, o, t, o / t, kb / 1024, mib }'
}
echo "| workload | iisan items/s | PyTorch items/s | ratio | iisan peak RSS | PyTorch peak RSS |"
echo "|---|---|---|---|---|---|"
read -r s kb < <(ours 64 --dataset "$SCI" --text-model models/minilm)
read -r t mib < <(torch --modality text --dataset "$SCI" --model models/minilm --batch 64)
row "text: MiniLM-L6, 20,314 Scientific titles, batch 64" "$s" "$kb" "$t" "$mib"
for px in 112 224; do
  read -r s kb < <(ours 32 --dataset "$SYN" --image-model models/dinov2-small --image-size $px)
  read -r t mib < <(torch --modality image --dataset "$SYN" --model models/dinov2-small --size $px --batch 32)
  row "image: DINOv2-S/14, 1,499 synthetic images, $px px, batch 32" "$s" "$kb" "$t" "$mib"
done
