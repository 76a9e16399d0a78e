"""The ANN index from Python: built over a run's catalogue, ranked through by ``Run.recommend``
with every score the item's exact score, ``exact=True`` ranking every item as before, and
items added from Python folded into the base by ``compact_items``."""

import pytest

import iisan
from conftest import histories_of


def test_index_recommends_exact_scores_and_compacts(tmp_path, dataset, run_copy):
    hist = histories_of(dataset, 20)
    before_ids, _ = iisan.Run.open(run_copy).recommend(hist, k=10)
    # a beam wider than the 200 items: the search visits every node it reaches, so the lists
    # hold most of the exact top 10 (a graph over inner products leaves some items no search
    # reaches: 188 of 200 found here, built on one thread, so the same every run), and every
    # score is the item's exact score
    r = iisan.build_index(run_copy, expansion_search=1024, threads=1, progress=False)
    assert r["items"] == 200 and r["bytes"] > 0 and r["seconds"] >= 0
    ids, scores = iisan.Run.open(run_copy).recommend(hist, k=10)
    all_ids, all_scores = iisan.Run.open(run_copy, exact=True).recommend(hist, k=200)
    hits = 0
    for b in range(len(hist)):
        exact = dict(zip(all_ids[b], all_scores[b]))
        for i, sc in zip(ids[b], scores[b]):
            assert sc == pytest.approx(exact[i], rel=1e-5, abs=1e-6)
        hits += len(set(ids[b]) & set(before_ids[b]))
    assert hits >= 0.9 * 10 * len(hist)
    exact_ids, _ = iisan.Run.open(run_copy, exact=True).recommend(hist, k=10)
    assert (exact_ids == before_ids).all()
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
    with pytest.raises(iisan.InputError, match="connectivity"):
        iisan.build_index(run_copy, connectivity=1, progress=False)
    with pytest.raises(iisan.InputError, match="storage"):
        iisan.build_index(run_copy, storage="i4", progress=False)
