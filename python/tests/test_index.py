"""The ANN index from Python: built over a run's catalogue, ranked through by ``Run.recommend``
with every score the item's exact score, ``exact=True`` ranking every item as before, and
items added from Python folded into the base by ``compact_items``."""

import pytest

import iisan
from conftest import histories_of


def test_index_recommends_exact_scores_and_compacts(tmp_path, dataset, run_copy):
    hist = histories_of(dataset, 20)
    before_ids, _ = iisan.Run.open(run_copy).recommend(hist, k=10)
    # 200 items: 64 lists (4 sqrt(200) = 57 -> 2^6), 16 scanned per query: every score served is
    # the item's exact score, most of the exact top 10 are found
    r = iisan.build_index(run_copy, probes=16, threads=1, progress=False)
    assert r["items"] == 200 and r["lists"] == 64 and r["bytes"] > 0 and r["seconds"] >= 0
    ids, scores = iisan.Run.open(run_copy).recommend(hist, k=10)
    all_ids, all_scores = iisan.Run.open(run_copy, exact=True).recommend(hist, k=200)
    hits = 0
    for b in range(len(hist)):
        exact = dict(zip(all_ids[b], all_scores[b]))
        for i, sc in zip(ids[b], scores[b]):
            assert sc == pytest.approx(exact[i], rel=1e-5, abs=1e-6)
        hits += len(set(ids[b]) & set(before_ids[b]))
    assert hits >= 0.8 * 10 * len(hist)
    exact_ids, _ = iisan.Run.open(run_copy, exact=True).recommend(hist, k=10)
    assert (exact_ids == before_ids).all()
    # every list scanned: the exact lists
    every_ids, _ = iisan.Run.open(run_copy, probes=64).recommend(hist, k=10)
    assert (every_ids == before_ids).all()
    # evaluation through the index (the served lists) next to the full ranking's
    run = iisan.Run.open(run_copy)
    served = run.evaluate(ks=[5, 10], mask=None)
    exact = run.evaluate(ks=[5, 10], mask=None, exact=True)
    for mask in ("history", "none"):
        for m in ("HR@5", "HR@10", "NDCG@5", "NDCG@10"):
            assert served[mask][m] == pytest.approx(exact[mask][m], abs=0.02), (mask, m)
    # an item added, then folded into the base and inserted into the index
    img = dataset / "images" / "S0001.png"
    assert run.add_items(["NEWA"], ["a lamp"], images=[img]) == 201
    c = iisan.compact_items(run_copy, progress=False)
    assert c == {"items": 201, "folded": 1, "indexed": 1}
    again = iisan.Run.open(run_copy)
    assert len(again.item_ids) == 201 and again.item_ids[-1] == "NEWA"


def test_bad_index_parameters_are_input_errors(run_copy):
    with pytest.raises(iisan.InputError, match="probes"):
        iisan.build_index(run_copy, probes=0, progress=False)
    with pytest.raises(iisan.InputError, match="storage"):
        iisan.build_index(run_copy, storage="i4", progress=False)
