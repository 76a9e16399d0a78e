"""iisan: IISAN (Intra- and Inter-modal Side Adapted Network, SIGIR 2024) and its baselines
for sequential recommendation on frozen text and image towers, from Python.

>>> import iisan
>>> run = iisan.train({"data": {"dir": "data/synthetic"}, "model": {"method": "id"}})
>>> ids, scores = run.recommend([["12", "7", "31"]], k=10)

The heavy lifting is the ``iisan`` Rust crate (the same code as the ``iisan`` command line, so
the same bits): :func:`train`, :func:`resume` and :func:`encode` are long tasks that show
progress and stop cleanly on Ctrl-C; :class:`Run` opens a run directory to rank, embed, add
items and evaluate; :mod:`iisan.data` has the dataset tools. Errors are :class:`iisan.Error`
subclasses (:mod:`iisan.errors`).
"""

import os
from typing import Any, Dict, List, Optional, Union

from . import data, errors
from ._config import Config, Overrides, overrides as _overrides, source as _source
from ._native import Run, __version__
from ._native import build_index as _build_index
from ._native import compact_items as _compact_items
from ._native import encode as _encode
from ._native import report as _report
from ._native import resume as _resume
from ._native import train as _train
from ._progress import Bar, ProgressArg, callback as _callback
from .errors import (
    ConfigError,
    DataError,
    DivergedError,
    Error,
    InputError,
    InternalError,
    IoError,
)

PathLike = Union[str, "os.PathLike[str]"]


def train(
    config: Config = None,
    overrides: Overrides = None,
    progress: ProgressArg = True,
    restart: bool = False,
) -> Run:
    """Train a configuration into a new run directory and return the finished :class:`Run`.

    ``config``: a TOML file's path, a dict nested like the TOML file (``{"train": {"batch":
    32}}``), or None for the defaults (the paper's settings); ``overrides``: ``{"train.batch":
    32}`` or ``["train.batch=32"]``, applied on top (as ``iisan train --set``). Every value is
    checked before any work: a bad one raises :class:`ConfigError` naming the key, and nothing
    is written. With the same configuration and seed the run equals ``iisan train``'s.

    ``progress``: True draws a bar (tqdm when installed) with a line per epoch, False shows
    nothing, a callable receives one dict per event (``{"event": "start" | "advance" |
    "message" | "finish" | "epoch" | "note", ...}``). Ctrl-C (``KeyboardInterrupt``) stops the
    training at its next step and leaves the run in its partial directory: :func:`resume`
    finishes it with the bits an uninterrupted run ends with. ``restart`` deletes an
    interrupted run of the same ``run.name`` first.
    """
    path, text = _source(config)
    return _train(
        config_path=path,
        config_json=text,
        overrides=_overrides(overrides),
        progress=_callback(progress),
        restart=restart,
    )


def resume(path: PathLike, progress: ProgressArg = True) -> Run:
    """Finish the interrupted run ``path`` (its partial directory ``runs/.<name>.partial``, or
    its name under ``runs/``) from its last completed epoch, to the same result as an
    uninterrupted run, and return it."""
    return _resume(os.fspath(path), progress=_callback(progress))


def encode(
    dataset: PathLike,
    out: PathLike,
    text_model: Optional[PathLike] = None,
    image_model: Optional[PathLike] = None,
    *,
    dtype: str = "f32",
    batch: int = 32,
    max_tokens: int = 30,
    image_size: int = 224,
    missing_images: str = "error",
    device: str = "cpu",
    tower_dtype: str = "f32",
    pooling: Optional[str] = None,
    shard: Optional[str] = None,
    min_seq_len: int = 5,
    max_seq_len: int = 10,
    keep_missing_titles: bool = False,
    progress: ProgressArg = True,
) -> List[Dict[str, Any]]:
    """Run the frozen towers once over every item of ``dataset`` and write the hidden-state
    caches ``out/text.hsc`` / ``out/image.hsc`` that cached IISAN trains on (``iisan
    encode``). ``text_model``: a Hugging Face BERT folder or a LLaMA / Mistral / Qwen2 / Qwen3
    decoder folder; ``image_model``: a ViT / DINOv2 / CLIP / SigLIP folder. ``pooling``: how a
    decoder's token states become an item's (``"mean"``, its default, ``"mean_unmasked"`` or
    ``"last"``; BERT: ``"cls"``). A finished matching cache is left alone; an interrupted one (Ctrl-C) is continued
    by the same call. Returns one report dict per modality (items encoded, seconds, bytes)."""
    return _encode(
        os.fspath(dataset),
        os.fspath(out),
        text_model=None if text_model is None else os.fspath(text_model),
        image_model=None if image_model is None else os.fspath(image_model),
        dtype=dtype,
        batch=batch,
        max_tokens=max_tokens,
        image_size=image_size,
        missing_images=missing_images,
        device=device,
        tower_dtype=tower_dtype,
        pooling=pooling,
        shard=shard,
        min_seq_len=min_seq_len,
        max_seq_len=max_seq_len,
        keep_missing_titles=keep_missing_titles,
        progress=_callback(progress),
    )


def report(
    runs: List[PathLike],
    out: PathLike,
    *,
    mask: str = "history",
    weights: str = "0.45,0.1,0.45",
    breakdowns: bool = True,
    progress: ProgressArg = True,
) -> None:
    """Write the report of the finished runs ``runs`` to ``out`` as one self-contained HTML page
    (``iisan report --html``): their settings side by side, test metrics under both masks,
    training curves with the best epoch, the efficiency comparison (parameters, seconds per
    epoch, peak memory, TPME with ``weights``) and, with ``breakdowns``, the test metrics by
    target popularity, history length and coldness (which ranks each run's test users again).
    Charts use ``mask`` (``history`` or ``none``). An existing ``out`` is replaced only when it
    is an earlier report."""
    _report(
        [os.fspath(r) for r in runs],
        os.fspath(out),
        mask=mask,
        weights=weights,
        breakdowns=breakdowns,
        progress=_callback(progress),
    )


def build_index(
    run: PathLike,
    *,
    lists: Optional[int] = None,
    probes: Optional[int] = None,
    candidates: Optional[int] = None,
    storage: Optional[str] = None,
    threads: int = 0,
    progress: ProgressArg = True,
) -> Dict[str, Any]:
    """Build the approximate nearest-neighbour index of the finished run ``run`` over every
    item of its catalogue (``iisan index build``): ``Run.recommend``, ``Run.evaluate`` and
    ``iisan serve`` then rank through it, re-scoring its candidates exactly. Parameters left
    out take the measured defaults (docs/SERVING.md): ``lists`` (0 or left out: the power of two
    nearest 4 sqrt(items)), ``probes`` (lists scanned per query), ``candidates`` (re-scored
    exactly per query); ``storage`` is ``"f16"`` (the default) or ``"f32"``.
    Returns ``{"items", "lists", "seconds", "bytes"}``."""
    return _build_index(
        os.fspath(run),
        lists=lists,
        probes=probes,
        candidates=candidates,
        storage=storage,
        threads=threads,
        progress=_callback(progress),
    )


def compact_items(run: PathLike, *, threads: int = 0, progress: ProgressArg = True) -> Dict[str, Any]:
    """Fold the items added to ``run`` since its catalogue was written (``Run.add_items``,
    ``iisan items add``, the server) into its memory-mapped base, and insert them into its
    ANN index (``iisan index compact``). Returns ``{"items", "folded", "indexed"}``."""
    return _compact_items(os.fspath(run), threads=threads, progress=_callback(progress))


__all__ = [
    "Run",
    "build_index",
    "compact_items",
    "train",
    "resume",
    "encode",
    "report",
    "data",
    "errors",
    "Bar",
    "Error",
    "ConfigError",
    "DataError",
    "InputError",
    "IoError",
    "DivergedError",
    "InternalError",
    "__version__",
]
