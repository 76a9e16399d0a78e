#!/usr/bin/env python3
"""A text cache written by `iisan encode` with a real decoder tower, checked against Hugging Face
transformers on the same folder: the first N titles of the items file that the cache holds
(found by their embedding-layer state, which depends on the tokens alone), every hidden state's
pooled state compared as the relative difference ||ours - theirs|| / ||theirs|| per layer.
Prints the worst and the median over the titles, per layer, and exits 1 above 1e-4.

    /tmp/iisan-ref-venv/bin/python scripts/golden/real_tower_check.py \
        cache/scientific-smollm2/text.hsc models/smollm2-135m ../shared/data/amazon-scientific 12
"""
import json
import struct
import sys

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

cache, model_dir, dataset, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(2)
raw = open(cache, "rb").read()
assert raw[:8] == b"IISANHS1", "not a hidden-state cache"
hlen = struct.unpack("<Q", raw[8:16])[0]
header = json.loads(raw[16:16 + hlen])
start = (16 + hlen + 63) // 64 * 64
states, width, items = header["states"], header["width"], header["items"]
assert header["dtype"] == "f32", "check an f32 cache"
rows = np.frombuffer(raw[start:start + (items + 1) * states * width * 4], np.float32)
rows = rows.reshape(items + 1, states, width)
pooling = header["tower"].get("pooling", "cls")
max_tokens = header["tower"]["max_tokens"]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
titles = [l.rstrip("\n").split("\t", 1)[1] for l in open(f"{dataset}/items.tsv", encoding="utf-8")][:n]
rel = []
for t in titles:
    enc = tok(t, max_length=max_tokens, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    if pooling == "mean":
        theirs = np.stack([h[0].mean(0).numpy() for h in hs])
    elif pooling == "last":
        theirs = np.stack([h[0, -1].numpy() for h in hs])
    else:
        sys.exit(f"pooling {pooling}: this check covers mean and last")
    # the cache row of this title: the one whose embedding-layer state is its own
    r = int(np.argmin(np.abs(rows[1:, 0] - theirs[0]).max(axis=1))) + 1
    d = np.linalg.norm(rows[r] - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    rel.append(d)
rel = np.array(rel)
print(f"{cache}: {model_dir}, {pooling} pooling, {len(titles)} titles, {states} states x {width}")
print("layer  worst     median")
for k in range(states):
    print(f"{k:5d}  {rel[:, k].max():.1e}  {np.median(rel[:, k]):.1e}")
print(f"worst over every layer and title: {rel.max():.1e}")
sys.exit(1 if rel.max() > 1e-4 else 0)
