#!/usr/bin/env python3
"""Golden values for the loss (docs/MODEL.md section 5) and the full-ranking evaluator (section 6),
produced by the independent PyTorch reference in ../shared/reference (iisan_ref.py), so that
`tests/golden_reference.rs` can check the Rust implementation against it.

The reference's own `IISAN.loss` and `evaluate` functions are called on fixed inputs: a stand-in
model object supplies fixed item embeddings and user states, so only the reference's masking,
popularity correction, cross-entropy, ranking, tie and metric code is exercised.

Run (needs the reference venv from ../shared/reference/setup.sh):
    /tmp/iisan-ref-venv/bin/python scripts/golden/loss_eval.py > tests/golden/loss_eval.json
"""
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
import iisan_ref  # noqa: E402

N, D = 12, 8  # items 1..N, embedding width


def table(rows, cols, f):
    return torch.tensor([[f(i, j) for j in range(cols)] for i in range(rows)], dtype=torch.float32)


E = table(N + 1, D, lambda i, j: 0.5 * math.sin(0.7 * i + 0.3 * j + 0.1 * i * j))
E[9] = E[4]          # items 4 and 9 tie exactly
E[0] = 0.0
# Loss batch: 4 users x 11 slots, left padded; repeats inside a window and across users.
seq = torch.tensor([
    [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
    [0, 0, 0, 0, 5, 6, 2, 7, 8, 9, 10],
    [11, 12, 1, 3, 5, 7, 9, 11, 2, 4, 6],
    [0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 12],
], dtype=torch.long)
B, L1 = seq.shape
P = table(B * (L1 - 1), D, lambda r, j: 0.8 * math.cos(0.37 * r + 0.9 * j))
counts = torch.tensor([0, 5, 3, 2, 7, 1, 4, 6, 2, 3, 1, 5, 2], dtype=torch.float64)
pop = counts / counts[1:].sum()
pop[0] = 1.0


class LossModel:
    log_pop = torch.log(pop.to(torch.float32))

    def embed_items(self, ids):
        return E[ids]

    def user(self, e, valid):
        return P.view(B, L1 - 1, D)


loss = iisan_ref.IISAN.loss(LossModel(), seq).item()

# Evaluation: 5 users with fixed states, left-padded inputs of 4, targets and histories.
U = table(5, D, lambda r, j: math.sin(1.3 * r + 0.45 * j) + 0.2)
inp = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8], [0, 0, 4, 2], [10, 11, 12, 1], [0, 9, 9, 3]])
tgt = torch.tensor([4, 2, 9, 11, 7])           # user 3's target 11 repeats its history
hist = [[1, 2, 3], [5, 6, 7, 8], [4, 2], [10, 11, 12, 1], [9, 9, 3]]


class EvalModel:
    def eval(self):
        return self

    def all_item_embeddings(self):
        return E

    def user_states(self, inp_, e):
        return U


ks = (1, 5, 10)
hist_m = torch.tensor([h + [0] * (4 - len(h)) for h in hist])
out = {m: iisan_ref.evaluate(EvalModel(), inp, tgt, hist_m, m, ks) for m in ("history", "none")}

json.dump({
    "producer": "scripts/golden/loss_eval.py with ../shared/reference/iisan_ref.py (torch %s)" % torch.__version__,
    "E": E.tolist(), "P": P.tolist(), "seq": seq.tolist(), "pop": pop.tolist(), "loss": loss,
    "U": U.tolist(), "targets": tgt.tolist(), "histories": hist, "ks": list(ks), "metrics": out,
}, sys.stdout, indent=1)
print()
