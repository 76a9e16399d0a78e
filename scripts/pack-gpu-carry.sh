#!/usr/bin/env bash
# Pack what scripts/gpu-check.sh needs on a GPU machine into .gpu/ (git-ignored through
# .git/info/exclude), within the device tool's 64 MiB: the stripped CUDA binary (xz), MiniLM's
# weights converted to f16 (they load as f32: the check's text tower is MiniLM rounded to f16)
# and the Scientific TSV files. Build the binary first (docs/GPU.md):
#   source scripts/cuda-env.sh && cargo build --release --features cuda --bin iisan
# Then, on the GPU machine, from the repository root (docs/GPU.md, "The GPU check"):
#   mkdir -p /tmp/g && python3 -c "import lzma,tarfile,shutil; \
#     shutil.copyfileobj(lzma.open('.gpu/iisan.xz'), open('/tmp/g/iisan','wb')); \
#     [tarfile.open(f).extractall('/tmp/g') for f in ('.gpu/minilm-f16.tar.xz','.gpu/scientific.tar.xz')]" \
#   && chmod +x /tmp/g/iisan && IISAN_BIN=/tmp/g/iisan MINILM=/tmp/g/minilm-f16 \
#      SCIENTIFIC=/tmp/g/scientific bash scripts/gpu-check.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CUDA_BIN:-target/cuda/release/iisan}"
MINILM="${MINILM:-models/minilm}"
SCI="${SCIENTIFIC:-../shared/data/amazon-scientific}"
[ -x "$BIN" ] || { echo "pack-gpu-carry: no CUDA binary at $BIN (see the header)" >&2; exit 2; }
mkdir -p .git/info .gpu
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >>.git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "pack-gpu-carry: binary"
cp "$BIN" "$tmp/iisan" && strip "$tmp/iisan"
xz -T2 -9 -c "$tmp/iisan" >.gpu/iisan.xz.partial && mv .gpu/iisan.xz.partial .gpu/iisan.xz
echo "pack-gpu-carry: MiniLM in f16"
mkdir -p "$tmp/minilm-f16"
python3 - "$MINILM/model.safetensors" "$tmp/minilm-f16/model.safetensors" <<'PY'
import array, json, struct, sys
src, dst = sys.argv[1:]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
hdr, base = json.loads(b[8:8 + n]), 8 + n
out, chunks, off = {}, [], 0
for k, v in sorted((k, v) for k, v in hdr.items() if k != "__metadata__"):
    s, e = v["data_offsets"]
    raw, dt = b[base + s:base + e], v["dtype"]
    if dt == "F32":
        a = array.array("f"); a.frombytes(raw)
        raw, dt = struct.pack(f"<{len(a)}e", *a), "F16"
    out[k] = {"dtype": dt, "shape": v["shape"], "data_offsets": [off, off + len(raw)]}
    chunks.append(raw); off += len(raw)
h = json.dumps(out, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for c in chunks: f.write(c)
PY
for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  [ -f "$MINILM/$f" ] && cp "$MINILM/$f" "$tmp/minilm-f16/"
done
tar -C "$tmp" -cJf .gpu/minilm-f16.tar.xz minilm-f16
echo "pack-gpu-carry: Scientific"
mkdir -p "$tmp/scientific" && cp "$SCI"/items.tsv "$SCI"/users.tsv "$tmp/scientific/"
tar -C "$tmp" -cJf .gpu/scientific.tar.xz scientific
du -b .gpu/* | awk '{s+=$1; print} END {printf "pack-gpu-carry: %.1f MiB in all (the tool carries 64 MiB with the working tree)\n", s/1048576}'
