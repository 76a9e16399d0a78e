"""Shared fixtures: a small synthetic multimodal dataset, its hidden-state caches (MiniLM
titles, DINOv2-S images at 112 px, installed by scripts/fetch-models.sh), the ``iisan`` binary
the Rust tests build (``IISAN_BIN``, default target/release/iisan), and IISAN / ID runs
trained once per session by the command line and by Python with the same configuration."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import iisan

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("IISAN_BIN", REPO / "target" / "release" / "iisan"))
MODELS = Path(os.environ.get("IISAN_MODELS", REPO / "models"))


def cli(*args, cwd=None, check=True):
    """Run the iisan binary; returns the completed process (stdout, stderr as text)."""
    assert BIN.exists(), f"{BIN}: build it first (cargo build --release)"
    p = subprocess.run([str(BIN), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("iisan")


@pytest.fixture(scope="session")
def dataset(work):
    d = work / "data"
    assert iisan.data.synth(d, users=300, items=200, seed=7) is True
    return d


@pytest.fixture(scope="session")
def cache(work, dataset):
    """The caches, encoded from Python."""
    out = work / "cache"
    reports = iisan.encode(
        dataset,
        out,
        text_model=MODELS / "minilm",
        image_model=MODELS / "dinov2-small",
        image_size=112,
        progress=False,
    )
    assert [r["modality"] for r in reports] == ["text", "image"]
    assert all(r["encoded"] == 200 for r in reports)
    return out


def iisan_config(work, dataset, cache, name):
    """A 3-epoch IISAN run on text and images (intra + inter paths, 4 image taps)."""
    return {
        "data": {"dir": str(dataset), "cache": str(cache)},
        "model": {
            "method": "iisan",
            "iisan": {"modality": "intra_inter", "image_taps": [0, 4, 8, 12]},
        },
        "train": {"epochs": 3},
        "eval": {"ks": [5, 10]},
        "run": {"dir": str(work / "runs"), "name": name},
    }


def as_sets(cfg, prefix=""):
    """A nested config dict as ``--set key=value`` arguments (JSON values are TOML values)."""
    out = []
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += as_sets(v, key + ".")
        else:
            out += ["--set", f"{key}={json.dumps(v)}"]
    return out


@pytest.fixture(scope="session")
def cli_run(work, dataset, cache):
    """The IISAN run trained by ``iisan train``."""
    cfg = iisan_config(work, dataset, cache, "cli")
    cli("train", "--quiet", *as_sets(cfg), cwd=work)
    return work / "runs" / "cli"


@pytest.fixture(scope="session")
def py_run(work, dataset, cache):
    """The same run trained by ``iisan.train``."""
    run = iisan.train(iisan_config(work, dataset, cache, "py"), progress=False)
    assert run.finished
    return run


@pytest.fixture(scope="session")
def id_run(work, dataset):
    cfg = {
        "data": {"dir": str(dataset)},
        "model": {"method": "id"},
        "train": {"epochs": 2},
        "run": {"dir": str(work / "runs"), "name": "id"},
    }
    return iisan.train(cfg, progress=False)


@pytest.fixture
def run_copy(tmp_path, cli_run):
    """A copy of the CLI's IISAN run, for tests that add items."""
    dst = tmp_path / "run"
    shutil.copytree(cli_run, dst)
    return dst


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (the format: an 8-byte little-endian
    header length, a JSON header of dtype / shape / data offsets, then the data)."""
    import numpy as np

    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U32": np.uint32}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def histories_of(dataset, n):
    """The first ``n`` users' histories (item ids, oldest first) of users.tsv."""
    lines = (Path(dataset) / "users.tsv").read_text().splitlines()
    return [line.split("\t")[1].split() for line in lines[:n]]
