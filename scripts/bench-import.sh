#!/usr/bin/env bash
# Import benchmark (BENCHMARKS.md, "Import"): generate a synthetic Amazon Reviews 2023 category
# of 2 million reviews over 200,000 items (scripts/gen-amazon2023.py, once), gzip a copy, and time
# `iisan data import amazon2023` on the plain and the gzipped files, RUNS times each, with
# /usr/bin/time for the peak RSS. Needs the release binary (cargo build --release).
#   bash scripts/bench-import.sh [DIR] [RUNS]
set -euo pipefail
dir=${1:-/tmp/iisan-bench-import}
runs=${2:-3}
bin=${IISAN_BIN:-target/release/iisan}
mkdir -p "$dir"
if [ ! -s "$dir/Synthetic.jsonl" ] || [ ! -s "$dir/meta_Synthetic.jsonl" ]; then
  echo "generating 2,000,000 reviews over 200,000 items into $dir (about a minute)" >&2
  python3 scripts/gen-amazon2023.py --reviews 2000000 --items 200000 --out "$dir"
fi
for f in Synthetic.jsonl meta_Synthetic.jsonl; do
  if [ ! -s "$dir/$f.gz" ]; then
    echo "gzip -6 $f" >&2
    gzip -6 -c "$dir/$f" > "$dir/$f.gz.partial" && mv "$dir/$f.gz.partial" "$dir/$f.gz"
  fi
done
lines=$(( $(wc -l < "$dir/Synthetic.jsonl") + $(wc -l < "$dir/meta_Synthetic.jsonl") ))
ls -lL "$dir"
echo "lines (reviews + metadata): $lines"
for kind in plain gz; do
  ext=""; [ "$kind" = gz ] && ext=".gz"
  for r in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$bin" data import amazon2023 --quiet \
      --reviews "$dir/Synthetic.jsonl$ext" --meta "$dir/meta_Synthetic.jsonl$ext" \
      --out "$dir/out-$kind" > "$dir/stdout.txt"
    read -r secs kib < "$dir/time.txt"
    python3 - "$dir/out-$kind/manifest.json" "$kind" "$r" "$secs" "$kib" "$lines" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
kind, r, secs, kib, lines = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
n = m["notes"]
print(f"{kind:5} run {r}: {secs:.2f} s wall, {lines / secs / 1e3:.0f}k lines/s overall, "
      f"reviews {n['review_lines'] / n['review_seconds'] / 1e3:.0f}k lines/s, "
      f"metadata {n['meta_lines'] / n['meta_seconds'] / 1e3:.0f}k lines/s, peak RSS {kib / 1024:.0f} MiB")
PY
  done
done
tail -1 "$dir/stdout.txt"
python3 -c "import json,sys; [print(c) for c in json.load(open(sys.argv[1]))['counts']]" "$dir/out-gz/manifest.json"
