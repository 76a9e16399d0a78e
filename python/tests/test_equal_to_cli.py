"""The Python answers equal the command line's for the same run, to the last bit."""

import json

import numpy as np

import iisan
from conftest import BIN, MODELS, cli, histories_of, read_safetensors

# what differs between two runs of the same configuration: times, memory, where, which name
RUN_SPECIFIC = {"efficiency", "profile", "wall_seconds", "run_dir"}


def comparable_summary(path):
    s = json.loads((path / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in RUN_SPECIFIC}


def epochs(path):
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["loss"], r["steps"], r["valid"]) for r in rows]


def test_encode_writes_the_bytes_the_cli_writes(work, dataset, cache):
    out = work / "cache-cli"
    cli(
        "encode", "--quiet", "--dataset", dataset, "--out", out, "--image-size", "112",
        "--text-model", MODELS / "minilm", "--image-model", MODELS / "dinov2-small",
    )
    for f in ["text.hsc", "image.hsc"]:
        a, b = (cache / f).read_bytes(), (out / f).read_bytes()
        assert len(a) > 200 * 384 * 4 and a == b, f


def test_train_gives_the_cli_runs_summary_epochs_and_weights(cli_run, py_run):
    py = py_run.path
    a, b = comparable_summary(cli_run), comparable_summary(py)
    assert a == b
    assert a["epochs_run"] == 3 and a["test"]["history"]["HR@10"] > 0
    assert epochs(cli_run) == epochs(py)
    for f in ["best.safetensors", "items.safetensors", "item_ids.txt", "config.toml"]:
        if f == "config.toml":
            # the same configuration but for the run's name
            strip = lambda t: t.replace('name = "cli"', "").replace('name = "py"', "")
            assert strip((cli_run / f).read_text()) == strip((py / f).read_text())
        else:
            assert (cli_run / f).read_bytes() == (py / f).read_bytes(), f


def test_item_embeddings_are_items_safetensors(cli_run):
    run = iisan.Run.open(cli_run)
    m = run.item_embeddings()
    items = read_safetensors(cli_run / "items.safetensors")["items"]
    assert m.dtype == np.float32 and m.shape == (200, run.dim) == (items.shape[0] - 1, 64)
    assert np.array_equal(m.view(np.uint32), items[1:].view(np.uint32))
    ids = (cli_run / "item_ids.txt").read_text().split("\n")[:-1]
    assert run.item_ids == ids


def test_recommend_gives_the_clis_ids_and_scores(work, dataset, cli_run):
    hist = histories_of(dataset, 60)
    f = work / "histories.txt"
    f.write_text("".join(" ".join(h) + "\n" for h in hist))
    run = iisan.Run.open(cli_run)
    for exclude in [False, True]:
        args = ["recommend", cli_run, "--histories", f, "-k", "10"]
        out = cli(*(args + (["--exclude-history"] if exclude else []))).stdout.splitlines()
        ids, scores = run.recommend(hist, k=10, exclude_history=exclude)
        assert ids.shape == scores.shape == (60, 10) and scores.dtype == np.float32
        for i, line in enumerate(out):
            want = json.loads(line)["items"]
            assert list(ids[i]) == [w["id"] for w in want]
            got = scores[i].view(np.uint32)
            assert np.array_equal(got, np.float32([w["score"] for w in want]).view(np.uint32))
        if exclude:
            assert not any(set(ids[i]) & set(h) for i, h in enumerate(hist))


def test_evaluate_gives_iisan_eval_json(cli_run):
    run = iisan.Run.open(cli_run)
    both = json.loads(cli("eval", cli_run, "--json").stdout)
    assert run.evaluate(mask=None) == both
    assert both["history"] == json.loads((cli_run / "summary.json").read_text())["test"]["history"]
    hist = json.loads(cli("eval", cli_run, "--json", "--mask", "history", "--ks", "1,20").stdout)
    assert run.evaluate(ks=[1, 20]) == hist and set(hist) == {"HR@1", "HR@20", "NDCG@1", "NDCG@20", "MRR"}
    by = json.loads(cli("eval", cli_run, "--json", "--by", "popularity").stdout)
    assert run.evaluate(by="popularity") == by and set(by) == {"all", "head", "torso", "tail"}
    assert sum(by[t]["items"] for t in ("head", "torso", "tail")) == len(run.item_ids)


def test_user_embeddings_are_the_states_recommend_scores_with(dataset, cli_run):
    run = iisan.Run.open(cli_run)
    hist = histories_of(dataset, 20)
    users = run.user_embeddings(hist)
    items = run.item_embeddings()
    assert users.shape == (20, 64) and users.dtype == np.float32
    ids, scores = run.recommend(hist, k=5)
    row = {k: i for i, k in enumerate(run.item_ids)}
    for b in range(20):
        want = items[[row[k] for k in ids[b]]] @ users[b]
        np.testing.assert_allclose(scores[b], want, rtol=1e-5, atol=1e-6)
        # and they are the best of the whole catalogue
        assert scores[b][-1] >= np.sort(items @ users[b])[-5] - 1e-5


def test_summary_config_and_epochs_are_the_files(cli_run):
    run = iisan.Run.open(cli_run)
    assert run.finished and run.method == "iisan:intra_inter" and run.dim == 64
    assert run.summary == json.loads((cli_run / "summary.json").read_text())
    assert run.config["model"]["method"] == "iisan"
    assert [e["epoch"] for e in run.epochs()] == [1, 2, 3]
    assert BIN.exists()
