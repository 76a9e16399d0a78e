"""The ANN index from Python: built over a run's catalogue, ranked through by ``Run.recommend``
with every score the item's exact score, ``exact=True`` ranking every item as before, and
items added from Python folded into the base by ``compact_items``."""

import numpy as np
import pytest

import iisan
from conftest import histories_of


def test_index_recommends_exact_scores_and_compacts(tmp_path, dataset, run_copy):
    hist = histories_of(dataset, 20)
    before_ids, before_scores = iisan.Run.open(run_copy).recommend(hist, k=10)
    # a beam wider than the 200 items: the graph search is exhaustive, so the lists must be
    # the exact ones
    r = iisan.build_index(run_copy, expansion_search=1024, threads=1, progress=False)
    assert r["items"] == 200 and r["bytes"] > 0 and r["seconds"] >= 0
    ids, scores = iisan.Run.open(run_copy).recommend(hist, k=10)
    assert (ids == before_ids).all()
    np.testing.assert_allclose(scores, before_scores, rtol=1e-5, atol=1e-6)
    exact_ids, _ = iisan.Run.open(run_copy, exact=True).recommend(hist, k=10)
    assert (exact_ids == before_ids).all()
    # evaluation through the index over the run's own catalogue: the served lists are the
    # exact top 10, so the served metrics at 5 and 10 equal the full ranking's
    run = iisan.Run.open(run_copy)
    served, exact = run.evaluate(ks=[5, 10], mask=None), run.evaluate(ks=[5, 10], mask=None, exact=True)
    for mask in ("history", "none"):
        for m in ("HR@5", "HR@10", "NDCG@5", "NDCG@10"):
            assert served[mask][m] == pytest.approx(exact[mask][m], abs=1e-9), (mask, m)
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
