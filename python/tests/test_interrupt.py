"""Ctrl-C during training stops it at the next step and leaves a run that iisan.resume
completes with the uninterrupted run's bits; so does an exception from a progress callback."""

import json
import signal

import pytest

import iisan
from conftest import iisan_config

RUN_SPECIFIC = {"efficiency", "profile", "wall_seconds", "run_dir"}


def outcome(path):
    s = json.loads((path / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in RUN_SPECIFIC}


def config(work, dataset, cache, name):
    """The session's IISAN configuration with batches of 8 users (38 steps an epoch), so the
    training is still running when the stop is asked for."""
    cfg = iisan_config(work, dataset, cache, name)
    cfg["train"]["batch"] = 8
    return cfg


@pytest.fixture(scope="module")
def uninterrupted(work, dataset, cache):
    return iisan.train(config(work, dataset, cache, "uninterrupted"), progress=False)


def stop_in_epoch(n, how):
    """A progress callback that, once epoch ``n`` has started and taken a step, raises SIGINT
    in this thread (as Ctrl-C does to the process) or raises ValueError."""
    state = {"epoch": 0}

    def cb(e):
        if e["event"] == "start" and e["label"].startswith("epoch "):
            state["epoch"] = int(e["label"].split()[1])
        if e["event"] == "advance" and state["epoch"] == n:
            if how == "sigint":
                signal.raise_signal(signal.SIGINT)
            else:
                raise ValueError("stop here")

    return cb


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test: a process started in the
    background by a non-interactive shell has SIGINT ignored, and Python then installs none."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("how", ["sigint", "callback"])
def test_an_interrupted_training_resumes_to_the_uninterrupted_bits(
    work, dataset, cache, uninterrupted, how, ctrl_c_raises
):
    cfg = config(work, dataset, cache, f"stopped-{how}")
    partial = work / "runs" / f".stopped-{how}.partial"
    expected = KeyboardInterrupt if how == "sigint" else ValueError
    with pytest.raises(expected) as e:
        iisan.train(cfg, progress=stop_in_epoch(2, how))
    if how == "sigint":
        assert "training stopped at epoch 2" in str(e.value) and str(partial) in str(e.value)
    assert partial.is_dir() and not (work / "runs" / f"stopped-{how}").exists()
    stopped = iisan.Run.open(partial)
    assert not stopped.finished and stopped.summary is None
    assert [x["epoch"] for x in stopped.epochs()] == [1]
    with pytest.raises(iisan.DataError, match="did not finish"):
        stopped.item_embeddings()
    # a second training of the same name is refused while the interrupted one is there
    with pytest.raises(iisan.DataError, match="an interrupted run"):
        iisan.train(cfg, progress=False)
    done = iisan.resume(partial, progress=False)
    assert done.finished and done.path.name == f"stopped-{how}"
    assert outcome(done.path) == outcome(uninterrupted.path)
    for f in ["best.safetensors", "items.safetensors", "metrics.jsonl"]:
        if f == "metrics.jsonl":
            strip = lambda p: [
                {k: v for k, v in json.loads(l).items() if k not in ("train_seconds", "eval_seconds", "peak_rss_mib")}
                for l in (p / f).read_text().splitlines()
            ]
            assert strip(done.path) == strip(uninterrupted.path)
        else:
            assert (done.path / f).read_bytes() == (uninterrupted.path / f).read_bytes(), f
