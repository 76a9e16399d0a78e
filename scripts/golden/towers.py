#!/usr/bin/env python3
"""Reference per-layer [CLS] states for the tower parity test (tests/towers_parity.rs), from
Hugging Face transformers (PyTorch, CPU, fp32):

* MiniLM (all-MiniLM-L6-v2, models/minilm) on 8 real titles from the Scientific data (long ones
  that truncate at 30 tokens, short ones, HTML-entity ones), lower-cased as the spec says;
* DINOv2-small (models/dinov2-small, imported by `iisan models import-onnx`) on two real
  photographs from scikit-image's data module, at 224 px (16x16 grid) and at 112 px (8x8 grid:
  bicubic position-embedding interpolation), normalised with ImageNet mean/std.

Fixtures written to tests/fixtures/images/ (224 px: PIL bilinear resize of the originals; 112 px:
PIL bilinear resize of the 224 px fixture, also used to check our resize against PIL's):
  astronaut: NASA (Eileen Collins), public domain ("no known copyright restrictions").
  coffee: Rachel Michetti / Pikolo Espresso Bar, CC0.
Run with the reference venv (torch, transformers, pillow, scikit-image):
    /tmp/iisan-ref-venv/bin/python scripts/golden/towers.py
"""
import html  # noqa: F401  (titles keep their entities verbatim, as the reference does)
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from transformers import AutoTokenizer, BertModel, Dinov2Model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "images")
ITEMS = os.path.join(ROOT, "..", "shared", "data", "amazon-scientific", "items.tsv")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
torch.set_num_threads(2)


def pick_titles():
    rows = [l.rstrip("\n").split("\t", 1) for l in open(ITEMS, encoding="utf-8")]
    titles = [t for _, t in rows if t]
    longest = sorted(titles, key=len)[-2:]
    shortest = sorted(titles, key=len)[:2]
    entity = [t for t in titles if "&amp;" in t][:2]
    other = [t for t in titles if "&#" in t or "&quot;" in t][:1] or [titles[100]]
    first = [titles[0]]
    picked = []
    for t in longest + shortest + entity + other + first + [titles[1000], titles[2000]]:
        if t not in picked:
            picked.append(t)
    return picked[:8]


def text_states(titles):
    d = os.path.join(ROOT, "models", "minilm")
    tok = AutoTokenizer.from_pretrained(d)
    model = BertModel.from_pretrained(d, add_pooling_layer=False).eval()
    enc = tok([t.lower() for t in titles], max_length=30, truncation=True, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    return {
        "titles": titles,
        "token_counts": enc["attention_mask"].sum(1).tolist(),
        "cls": torch.stack([h[:, 0] for h in hs], 1).tolist(),
    }


def pixels(path):
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(((x - MEAN) / STD).transpose(2, 0, 1)))


def image_states():
    os.makedirs(FIX, exist_ok=True)
    model = Dinov2Model.from_pretrained(os.path.join(ROOT, "models", "dinov2-small")).eval()
    out = {}
    for name, img in [("astronaut", skdata.astronaut()), ("coffee", skdata.coffee())]:
        p224 = os.path.join(FIX, f"{name}_224.png")
        Image.fromarray(img).convert("RGB").resize((224, 224), Image.BILINEAR).save(p224)
        p112 = os.path.join(FIX, f"{name}_112.png")
        Image.open(p224).convert("RGB").resize((112, 112), Image.BILINEAR).save(p112)
        for size, p in [(224, p224), (112, p112)]:
            with torch.no_grad():
                hs = model(pixel_values=pixels(p)[None], output_hidden_states=True).hidden_states
            out[f"{name}_{size}"] = torch.stack([h[0, 0] for h in hs], 0).tolist()
    return out


json.dump({
    "producer": f"scripts/golden/towers.py (torch {torch.__version__}, transformers "
                f"{__import__('transformers').__version__})",
    "text": text_states(pick_titles()),
    "image": image_states(),
}, open(os.path.join(ROOT, "tests", "golden", "towers.json"), "w"))
print("wrote tests/golden/towers.json and tests/fixtures/images/*.png", file=sys.stderr)
