#!/usr/bin/env python3
"""f32 matrix-product throughput (GFLOP/s) of PyTorch (MKL / oneDNN) and NumPy (its bundled
OpenBLAS) on the towers' shapes, 2 threads, next to `cargo run --release --example gemm_rate`
(the project's product, `nn::product::matmul`, over the `gemm` crate). The best of them bounds
what any f32 encoder can reach on this CPU (BENCHMARKS.md, "What f32 encoding can reach").

    OPENBLAS_NUM_THREADS=2 /tmp/iisan-ref-venv/bin/python scripts/bench/gemm_rate.py
"""
import time

import numpy as np
import torch

torch.set_num_threads(2)
# rows x inner x outer: text batches (64 titles x 26 tokens), 224 px image batches (32 x 257)
SHAPES = [(1664, 384, 384), (1664, 384, 1536), (1664, 1536, 384),
          (8224, 384, 384), (8224, 384, 1536), (8224, 1536, 384)]


def rate(f, flop):
    for _ in range(3):
        f()
    t, reps = time.perf_counter(), 0
    while time.perf_counter() - t < 1.5:
        f()
        reps += 1
    return flop * reps / (time.perf_counter() - t) / 1e9


for m, k, n in SHAPES:
    a, b = torch.randn(m, k), torch.randn(n, k).t()  # weights stored [out, in], as the towers'
    an, bn = a.numpy(), b.numpy()
    flop = 2 * m * k * n
    print(f"{m}x{k}x{n}: torch {rate(lambda: a @ b, flop):.1f} GF/s, "
          f"numpy-openblas {rate(lambda: an @ bn, flop):.1f} GF/s")
