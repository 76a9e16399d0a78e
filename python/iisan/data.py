"""Datasets: statistics after the paper's preprocessing, imports of the field's public
formats into iisan's dataset directory (``items.tsv``, ``users.tsv``, ``images/``), the
RecBole export, the embedded synthetic default and the cold-start split. The same tools as
``iisan data ...``; docs/IMPORT.md describes the formats."""

import os
from typing import Any, Dict, Optional, Union

from . import _native
from ._progress import ProgressArg, callback as _callback

PathLike = Union[str, "os.PathLike[str]"]


def _p(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def stats(
    dataset: PathLike,
    min_seq_len: int = 5,
    max_seq_len: int = 10,
    keep_missing_titles: bool = False,
) -> Dict[str, Any]:
    """Users, items, interactions, mean length, repeated targets and the fingerprint of the
    dataset directory ``dataset`` after preprocessing (``iisan data stats --json``, plus the
    fingerprint)."""
    return _native.stats(os.fspath(dataset), min_seq_len, max_seq_len, keep_missing_titles)


def _amazon(edition: str, reviews, meta, out, images, min_interactions, max_users, seed,
            skip_bad_lines, require_meta, progress) -> Dict[str, Any]:
    return _native.import_amazon(
        edition,
        os.fspath(reviews),
        os.fspath(meta),
        os.fspath(out),
        images=_p(images),
        min_interactions=min_interactions,
        max_users=max_users,
        seed=seed,
        skip_bad_lines=skip_bad_lines,
        require_meta=require_meta,
        progress=_callback(progress),
    )


def import_amazon2023(
    reviews: PathLike,
    meta: PathLike,
    out: PathLike,
    images: Optional[PathLike] = None,
    min_interactions: int = 5,
    max_users: Optional[int] = None,
    seed: int = 42,
    skip_bad_lines: bool = False,
    require_meta: bool = False,
    progress: ProgressArg = True,
) -> Dict[str, Any]:
    """Import Amazon Reviews 2023 JSON lines (gzip or plain): reviews (``user_id``,
    ``parent_asin``, ``timestamp``) joined with metadata (``parent_asin``, ``title``,
    ``images``) into the dataset directory ``out`` (written beside and renamed; an existing
    directory that is not an earlier import is refused). Returns the report: the manifest
    (sources with SHA-256, counts per step) and what was kept."""
    return _amazon("2023", reviews, meta, out, images, min_interactions, max_users, seed,
                   skip_bad_lines, require_meta, progress)


def import_amazon2018(
    reviews: PathLike,
    meta: PathLike,
    out: PathLike,
    images: Optional[PathLike] = None,
    min_interactions: int = 5,
    max_users: Optional[int] = None,
    seed: int = 42,
    skip_bad_lines: bool = False,
    require_meta: bool = False,
    progress: ProgressArg = True,
) -> Dict[str, Any]:
    """:func:`import_amazon2023` for the 2018 edition (``reviewerID``, ``asin``,
    ``unixReviewTime``; metadata ``asin``, ``title``, ``imageURLHighRes``)."""
    return _amazon("2018", reviews, meta, out, images, min_interactions, max_users, seed,
                   skip_bad_lines, require_meta, progress)


def import_recbole(
    inter: PathLike,
    out: PathLike,
    item: Optional[PathLike] = None,
    title_field: str = "title",
    skip_bad_lines: bool = False,
    progress: ProgressArg = True,
) -> Dict[str, Any]:
    """Import RecBole atomic files (``.inter`` and, for titles, ``.item``) into the dataset
    directory ``out``."""
    return _native.import_recbole(
        os.fspath(inter),
        os.fspath(out),
        item=_p(item),
        title_field=title_field,
        skip_bad_lines=skip_bad_lines,
        progress=_callback(progress),
    )


def export_recbole(
    dataset: PathLike,
    out: PathLike,
    min_seq_len: int = 5,
    max_seq_len: int = 10,
    keep_missing_titles: bool = False,
) -> Dict[str, Any]:
    """Write the preprocessed dataset as RecBole atomic files ``out/<name>.inter`` and
    ``out/<name>.item`` (the name is ``out``'s)."""
    return _native.export_recbole(
        os.fspath(dataset), os.fspath(out), min_seq_len, max_seq_len, keep_missing_titles
    )


def synth(
    out: PathLike,
    users: Optional[int] = None,
    items: Optional[int] = None,
    seed: Optional[int] = None,
    image_size: Optional[int] = None,
    force: bool = False,
) -> bool:
    """Write the embedded synthetic multimodal dataset (2,000 users, 1,500 items and a
    112 x 112 PNG per item unless told otherwise) to ``out``. True when written, False when
    ``out`` already held this dataset; a different one there is replaced only with
    ``force``."""
    return _native.synth(os.fspath(out), users, items, seed, image_size, force)


def split_cold(
    dataset: PathLike, out: PathLike, frac: float = 0.1, seed: int = 2024
) -> Dict[str, Any]:
    """Write the cold-start version of ``dataset`` to ``out``: a random fraction ``frac`` of
    the interacted items never appears in any training input or target; their ids go to
    ``out/cold_items.txt`` (for ``Run.evaluate(cold_items=...)``)."""
    return _native.split_cold(os.fspath(dataset), os.fspath(out), frac, seed)


__all__ = [
    "stats",
    "import_amazon2023",
    "import_amazon2018",
    "import_recbole",
    "export_recbole",
    "synth",
    "split_cold",
]
