#!/usr/bin/env bash
# Kill-and-resume check (BENCHMARKS.md, "Reliability"): trains a config once uninterrupted, then
# again while crashing it at several points — inside a checkpoint write and during validation
# (fault injection, IISAN_FAULT), and with SIGKILL at fixed delays after each restart (mid-step
# or mid-evaluation) — resuming with `iisan train --resume` each time; then compares the two
# runs: test metrics, per-epoch losses, and the bytes of best.safetensors and items.safetensors.
# Usage: scripts/bench/resume.sh [CONFIG]   (default configs/iisan-synthetic.toml; needs its
# caches and a release build). Exit 0 only when everything is identical.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=./target/release/iisan
cfg=${1:-configs/iisan-synthetic.toml}
stamp=$(date +%Y%m%d-%H%M%S)
ref="resume-ref-$stamp"; k="resume-kill-$stamp"; part="runs/.$k.partial"
done_epochs() { python3 -c "import json,sys; print(json.load(open('$part/resume.json'))['epoch'])" 2>/dev/null || echo 0; }
$B train --quiet --config "$cfg" --set "run.name=\"$ref\"" > /dev/null
echo "uninterrupted: runs/$ref"
IISAN_FAULT=checkpoint-write:2 $B train --quiet --config "$cfg" --set "run.name=\"$k\"" > /dev/null 2>&1 \
  || echo "crash 1: abort inside epoch 2's checkpoint write -> resumable from epoch $(done_epochs)"
IISAN_FAULT=evaluation:4 $B train --quiet --resume "$k" > /dev/null 2>&1 \
  || echo "crash 2: abort during epoch 4's validation -> resumable from epoch $(done_epochs)"
for d in 2.3 4.1 3.2; do
  $B train --quiet --resume "$k" > /dev/null 2>&1 & pid=$!
  sleep "$d"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    echo "crash: SIGKILL ${d}s after restart -> resumable from epoch $(done_epochs)"
  fi
done
$B train --quiet --resume "$k" > /dev/null
echo "resumed to the end: runs/$k"
python3 - "runs/$ref" "runs/$k" <<'PY'
import json, sys
a, b = sys.argv[1:]
sa, sb = (json.load(open(f"{d}/summary.json")) for d in (a, b))
ok = True
for key in ("test", "valid", "best_epoch", "epochs_run", "stopped_early"):
    same = sa[key] == sb[key]
    ok &= same
    print(f"{key:14s} {'identical' if same else 'DIFFERENT'}  {json.dumps(sa[key])[:90]}")
la = [(r["epoch"], r["loss"]) for r in map(json.loads, open(f"{a}/metrics.jsonl"))]
lb = [(r["epoch"], r["loss"]) for r in map(json.loads, open(f"{b}/metrics.jsonl"))]
print(f"{'epoch losses':14s} {'identical' if la == lb else 'DIFFERENT'}  ({len(la)} epochs)")
sys.exit(0 if ok and la == lb else 1)
PY
for f in best.safetensors items.safetensors; do
  cmp "runs/$ref/$f" "runs/$k/$f" && echo "cmp $f: identical bytes"
done
