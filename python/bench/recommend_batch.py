"""Time of ``iisan.Run.recommend`` on many histories at once from Python: the twin of
``examples/recommend_batch.rs`` (same arguments, same output line), run side by side with it
by ``scripts/bench/python_overhead.sh``.

Usage: python recommend_batch.py RUN HISTORIES.txt [REPEATS] [K]
"""

import sys
import time

import iisan


def main() -> None:
    run_dir, path = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    run = iisan.Run.open(run_dir)
    with open(path) as f:
        histories = [line.split() for line in f if line.strip()]
    run.recommend(histories[:500], k=k)  # warm-up, as the Rust twin
    secs = []
    for _ in range(repeats):
        t = time.perf_counter()
        ids, scores = run.recommend(histories, k=k)
        secs.append(time.perf_counter() - t)
        assert ids.shape == (len(histories), k)
    secs.sort()
    n = len(run.item_ids)
    print(
        f"python {len(histories)} histories x {n} items, k {k}: median {secs[len(secs) // 2]:.4f} s,"
        f" best {secs[0]:.4f} s ({repeats} repeats)"
    )


if __name__ == "__main__":
    main()
