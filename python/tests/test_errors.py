"""Every bad input raises the right exception, with the command line's message, and writes
nothing."""

import os

import numpy as np
import pytest

import iisan
from conftest import histories_of


def snapshot(d):
    """Every file under ``d`` with its bytes."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def test_the_classes_are_one_family_and_the_builtins_callers_catch():
    assert issubclass(iisan.ConfigError, iisan.Error) and issubclass(iisan.ConfigError, ValueError)
    assert issubclass(iisan.InputError, ValueError) and issubclass(iisan.DataError, ValueError)
    assert issubclass(iisan.IoError, OSError) and issubclass(iisan.InternalError, RuntimeError)


def test_a_missing_run_names_the_file(tmp_path):
    with pytest.raises(iisan.DataError) as e:
        iisan.Run.open(tmp_path / "nope")
    assert str(e.value).endswith("nope/summary.json: missing: not a finished run (nor an interrupted one: no run.lock)")
    assert e.value.exit_code == 2 and e.value.path.endswith("summary.json")


def test_bad_queries_raise_input_error(run_copy, dataset):
    run = iisan.Run.open(run_copy)
    h = histories_of(dataset, 3)
    with pytest.raises(iisan.InputError, match=r"^history 2: unknown item ids NOPE, ALSO$"):
        run.recommend([h[0], h[1] + ["NOPE", "ALSO"]])
    with pytest.raises(iisan.InputError, match="k must be at least 1"):
        run.recommend(h, k=0)
    with pytest.raises(iisan.InputError, match="history 1 is empty"):
        run.user_embeddings([[]])
    with pytest.raises(iisan.InputError, match="a string"):
        run.recommend("S0001 S0002")
    with pytest.raises(iisan.InputError, match="history 1: a string"):
        run.recommend(["S0001"])
    with pytest.raises(iisan.InputError, match="history 2: not a list of item ids"):
        run.recommend([["S0001"], [1, 2]])
    with pytest.raises(iisan.InputError, match="mask"):
        run.evaluate(mask="all")


def test_a_bad_config_raises_config_error_and_writes_nothing(work, dataset):
    runs = work / "runs-bad"
    base = {"data": {"dir": str(dataset)}, "model": {"method": "id"}, "run": {"dir": str(runs)}}
    cases = [
        ({"train.bach": 3}, "train.bach: unknown field `bach`"),
        ({"train.batch": 0}, "train.batch"),
        (["train.lr=-1"], "train.lr"),
        ({"model.user.heads": 3}, "model.user.heads"),
    ]
    for overrides, want in cases:
        with pytest.raises(iisan.ConfigError) as e:
            iisan.train(base, overrides=overrides, progress=False)
        assert want in str(e.value) and e.value.exit_code == 2
    with pytest.raises(iisan.ConfigError, match="the config dict"):
        iisan.train({**base, "train": {"batch": "big"}}, progress=False)
    with pytest.raises(iisan.IoError, match="no-data/items.tsv: No such file") as e:
        iisan.train({**base, "data": {"dir": str(work / "no-data")}}, progress=False)
    assert e.value.path.endswith("items.tsv") and e.value.exit_code == 2
    with pytest.raises(TypeError):
        iisan.train(base, overrides="train.batch=3")
    assert not runs.exists() or os.listdir(runs) == []


def test_adding_bad_items_raises_and_leaves_the_run_unchanged(run_copy, dataset, id_run):
    run = iisan.Run.open(run_copy)
    before = snapshot(run_copy)
    known = run.item_ids[0]
    png = (dataset / "images" / f"{known}.png").read_bytes()
    cases = [
        (([known], ["a title"], [png]), iisan.InputError, "already in the catalogue"),
        ((["N1", "N1"], ["a", "b"], [png, png]), iisan.InputError, "N1"),
        ((["N1"], ["a", "b"], [png]), iisan.InputError, "1 ids but 2 titles"),
        ((["N1"], ["a"], [b"not an image"]), iisan.InputError, "not a decodable PNG"),
        ((["N1"], ["a"], [None]), iisan.InputError, "no image"),
        ((["N1"], ["a"], [np.zeros((8, 8, 4), np.uint8)]), iisan.InputError, "H x W x 3"),
        ((["N1"], [""], [png]), iisan.InputError, "empty title"),
        ((["N 1"], ["a"], [png]), iisan.InputError, "N 1"),
    ]
    for args, cls, want in cases:
        with pytest.raises(cls) as e:
            run.add_items(*args)
        assert want in str(e.value), str(e.value)
    with pytest.raises(iisan.IoError):
        run.add_items(["N1"], ["a"], [str(dataset / "images" / "missing.png")])
    assert snapshot(run_copy) == before
    assert run.item_ids == iisan.Run.open(run_copy).item_ids
    # an ID model has nothing to embed a new item from
    before = snapshot(id_run.path)
    with pytest.raises(iisan.DataError, match="the id method cannot embed new items"):
        id_run.add_items(["N1"], ["a"])
    assert snapshot(id_run.path) == before


def test_a_malformed_import_names_the_file_and_line_and_writes_nothing(tmp_path):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\nu1\ti2\n")
    out = tmp_path / "out"
    with pytest.raises(iisan.DataError) as e:
        iisan.data.import_recbole(inter, out, progress=False)
    assert str(e.value) == f"{inter}:3: 2 fields, the header has 3"
    assert (e.value.path, e.value.line, e.value.exit_code) == (str(inter), 3, 2)
    assert not out.exists()
    with pytest.raises(iisan.InputError, match="dtype"):
        iisan.encode(tmp_path, tmp_path / "cache", text_model=tmp_path, dtype="f8", progress=False)
    assert not (tmp_path / "cache").exists()
