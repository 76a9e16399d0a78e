#!/usr/bin/env python3
"""PyTorch (transformers, CPU) counterpart of `iisan encode`, for the throughput ratio in
BENCHMARKS.md: the same towers, data, batch sizes, preprocessing and thread count.

  text:  every item title of a dataset (lower-cased, max 30 tokens), batches of titles sorted by
         token length within windows of 16 batches (as iisan does), padded to the batch's longest;
  image: every item image of a dataset, PIL RGB + bilinear resize + ImageNet normalisation.
Per-layer [CLS] of all hidden states is kept (fp32, no grad). Prints items/s and peak RSS.

    /tmp/iisan-ref-venv/bin/python scripts/bench/torch_encode.py --modality text \
        --dataset ../shared/data/amazon-scientific --model models/minilm --threads 2 --batch 64
    /tmp/iisan-ref-venv/bin/python scripts/bench/torch_encode.py --modality image \
        --dataset data/synthetic --model models/dinov2-small --size 112 --threads 2 --batch 32
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference"))
import data as D  # noqa: E402  (the reference's preprocessing: same users/items as iisan)

ap = argparse.ArgumentParser()
ap.add_argument("--modality", choices=["text", "image"], required=True)
ap.add_argument("--dataset", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--size", type=int, default=224)
a = ap.parse_args()
torch.set_num_threads(a.threads)
ds = D.Dataset(a.dataset)
n = ds.n_items
out = np.zeros((n + 1, 1, 1), np.float32)
t0 = time.perf_counter()
with torch.no_grad():
    if a.modality == "text":
        from transformers import AutoTokenizer, BertModel
        tok = AutoTokenizer.from_pretrained(a.model)
        model = BertModel.from_pretrained(a.model, add_pooling_layer=False).eval()
        titles = [t.lower() for t in ds.titles[1:]]
        t0 = time.perf_counter()
        window = a.batch * 16
        for w in range(0, n, window):
            chunk = titles[w:w + window]
            ids = tok(chunk, max_length=30, truncation=True)["input_ids"]
            order = sorted(range(len(chunk)), key=lambda k: len(ids[k]))
            for s in range(0, len(order), a.batch):
                sel = [chunk[k] for k in order[s:s + a.batch]]
                enc = tok(sel, max_length=30, truncation=True, padding="longest", return_tensors="pt")
                hs = model(**enc, output_hidden_states=True).hidden_states
                torch.stack([h[:, 0] for h in hs], 1).numpy()
    else:
        from PIL import Image
        from transformers import Dinov2Model
        model = Dinov2Model.from_pretrained(a.model).eval()
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        keys = ds.asins[1:]
        t0 = time.perf_counter()
        for s in range(0, n, a.batch):
            px = []
            for k in keys[s:s + a.batch]:
                im = Image.open(os.path.join(a.dataset, "images", f"{k}.png")).convert("RGB")
                if im.size != (a.size, a.size):
                    im = im.resize((a.size, a.size), Image.BILINEAR)
                x = (np.asarray(im, np.float32) / 255.0 - mean) / std
                px.append(x.transpose(2, 0, 1))
            hs = model(pixel_values=torch.from_numpy(np.stack(px)), output_hidden_states=True).hidden_states
            torch.stack([h[:, 0] for h in hs], 1).numpy()
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch {torch.__version__} {a.modality}: {n} items in {dt:.1f}s = {n / dt:.1f} items/s, "
      f"threads {torch.get_num_threads()}, batch {a.batch}, peak RSS {rss:.0f} MiB")
