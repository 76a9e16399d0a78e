"""A Run shared between Python threads: rankings at once agree with serial ones, and a
ranking during an addition sees the catalogue before or after it."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import iisan
from conftest import histories_of


def test_two_threads_rank_at_once_and_agree_with_serial_answers(dataset, cli_run):
    run = iisan.Run.open(cli_run)
    hist = histories_of(dataset, 300)
    halves = [hist[:150] * 8, hist[150:] * 8]
    serial = [run.recommend(h, k=20) for h in halves]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda h: run.recommend(h, k=20), halves))
    for (ia, sa), (ib, sb) in zip(serial, parallel):
        assert (ia == ib).all() and np.array_equal(sa.view(np.uint32), sb.view(np.uint32))


def test_rankings_during_an_addition_see_a_whole_catalogue(run_copy, dataset):
    run = iisan.Run.open(run_copy)
    hist = histories_of(dataset, 50)
    before, _ = run.recommend(hist, k=200)
    png = (dataset / "images" / "S0005.png").read_bytes()

    def add():
        run.add_items(["T1", "T2"], ["a copy of item five", "another"], [png, png])

    def rank():
        return [run.recommend(hist, k=200)[0] for _ in range(5)]

    with ThreadPoolExecutor(2) as pool:
        f_rank, f_add = pool.submit(rank), pool.submit(add)
        f_add.result()
        seen = f_rank.result()
    after, _ = run.recommend(hist, k=200)
    assert {"T1", "T2"} <= set(after.ravel())
    for ids in seen:
        # before the addition every list has 200 of the 200 old items (None padding aside)
        assert (ids == before).all() or (ids == after).all()
