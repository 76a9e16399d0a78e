"""Quick start of the iisan Python package: IISAN on the embedded synthetic dataset, from the
data to recommendations for an item the model never saw.

    pip install ./python                       # from the repository's root
    bash scripts/fetch-models.sh --text-only   # the MiniLM text tower into models/minilm
    python examples/python/quickstart.py       # about a minute on a 2-core laptop
"""

import iisan

# 1. the data: 2,000 users, 1,500 items with titles and images (generated, no download)
iisan.data.synth("data/synthetic")
print(iisan.data.stats("data/synthetic"))

# 2. the frozen text tower runs once over every title (the hidden-state cache)
iisan.encode("data/synthetic", "cache/synthetic-text", text_model="models/minilm")

# 3. IISAN's side network on the cached states (text only), the paper's settings otherwise
run = iisan.train(
    {
        "data": {"dir": "data/synthetic", "cache": "cache/synthetic-text"},
        "model": {"method": "iisan", "iisan": {"modality": "text"}},
        "train": {"epochs": 20},
    },
    overrides={"eval.ks": [10, 20]},
)
print(run.method, "test:", run.summary["test"]["history"])

# 4. recommendations for a history of item ids (oldest first), as numpy arrays
history = run.item_ids[:5]
ids, scores = run.recommend([history], k=5, exclude_history=True)
print("top 5:", [(i, round(float(s), 3)) for i, s in zip(ids[0], scores[0])])

# 5. a new item, embedded by the frozen tower and the trained side network (no retraining)
titles = dict(line.rstrip("\n").split("\t", 1) for line in open("data/synthetic/items.tsv"))
best = ids[0][0]
new_title = titles[best] + " (new edition)"
run.add_items(["NEW-1"], [new_title])
ids, scores = run.recommend([history], k=len(run.item_ids), exclude_history=True)
rank = list(ids[0]).index("NEW-1") + 1
print(f"NEW-1 {new_title!r}: rank {rank} of {len(run.item_ids)} for the same history")
