"""Type stubs of iisan's Rust extension (iisan._native). Use the names ``iisan`` exports."""

import os
import pathlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
Histories = Iterable[Iterable[str]]
Image = Union[PathLike, bytes, npt.NDArray[np.uint8], None]
Callback = Optional[Callable[[Dict[str, Any]], Any]]

__version__: str

class Run:
    """A run directory opened for use: a finished run ranks items for histories, embeds users
    and items, takes new items without retraining and is evaluated again; an interrupted run
    has a configuration and epochs (``iisan.resume`` finishes it). Safe to share between
    threads."""

    @staticmethod
    def open(
        path: PathLike, exact: bool = False, probes: Optional[int] = None
    ) -> "Run":
        """Open the run directory ``path`` (a finished run, or an interrupted one's partial
        directory). ``exact``: rank every item even when the run has an ANN index;
        ``probes``: lists of the index scanned per query instead of its built number."""
    @property
    def path(self) -> pathlib.Path:
        """The run directory."""
    @property
    def finished(self) -> bool:
        """Whether the run finished."""
    @property
    def method(self) -> str:
        """The method as tables show it: ``id``, ``iisan:text``, ``lora:text+image``, ..."""
    @property
    def dim(self) -> int:
        """The width d of user and item embeddings."""
    @property
    def item_ids(self) -> List[str]:
        """The item ids in row order: row i of ``item_embeddings()`` is ``item_ids[i]``."""
    @property
    def config(self) -> Dict[str, Any]:
        """The resolved configuration (config.toml) as a dict."""
    @property
    def summary(self) -> Optional[Dict[str, Any]]:
        """summary.json as a dict, or None for an interrupted run."""
    def epochs(self) -> List[Dict[str, Any]]:
        """The epochs trained so far (metrics.jsonl), one dict each."""
    def item_embeddings(self) -> npt.NDArray[np.float32]:
        """The item embedding matrix (N, d), row i the item ``item_ids[i]``."""
    def user_embeddings(self, histories: Histories) -> npt.NDArray[np.float32]:
        """The user state (B, d) of each history of item ids, oldest first."""
    def recommend(
        self, histories: Histories, k: int = 10, exclude_history: bool = False
    ) -> Tuple[npt.NDArray[np.object_], npt.NDArray[np.float32]]:
        """``(ids, scores)``: the k best items (B, k) for each history, best first, and their
        scores (float32); short rows end with None ids and NaN scores."""
    def add_items(
        self,
        ids: Sequence[str],
        titles: Sequence[str],
        images: Optional[Sequence[Image]] = None,
        missing_images: Optional[str] = None,
    ) -> int:
        """Embed new items (no retraining) and add them to the catalogue; returns the number of
        items in the catalogue."""
    def evaluate(
        self,
        ks: Optional[Sequence[int]] = None,
        mask: Optional[str] = "history",
        cold_items: Optional[PathLike] = None,
        device: Optional[str] = None,
        by: Optional[str] = None,
        exact: bool = False,
    ) -> Dict[str, Any]:
        """The test metrics of the best checkpoint, as ``iisan eval --json`` prints them;
        with ``cold_items`` or ``by`` ("popularity", "history", "cold") a dict of groups. A
        run with an ANN index is evaluated on the lists it serves unless ``exact``."""

def train(
    config_path: Optional[PathLike] = None,
    config_json: Optional[str] = None,
    overrides: List[str] = ...,
    progress: Callback = None,
    restart: bool = False,
) -> Run: ...
def resume(path: PathLike, progress: Callback = None) -> Run: ...
def encode(
    dataset: PathLike,
    out: PathLike,
    text_model: Optional[PathLike] = None,
    image_model: Optional[PathLike] = None,
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
    progress: Callback = None,
) -> List[Dict[str, Any]]: ...
def stats(
    dataset: PathLike, min_seq_len: int = 5, max_seq_len: int = 10, keep_missing_titles: bool = False
) -> Dict[str, Any]: ...
def import_amazon(
    edition: str,
    reviews: PathLike,
    meta: PathLike,
    out: PathLike,
    images: Optional[PathLike] = None,
    min_interactions: int = 5,
    max_users: Optional[int] = None,
    seed: int = 42,
    skip_bad_lines: bool = False,
    require_meta: bool = False,
    progress: Callback = None,
) -> Dict[str, Any]: ...
def import_recbole(
    inter: PathLike,
    out: PathLike,
    item: Optional[PathLike] = None,
    title_field: str = "title",
    skip_bad_lines: bool = False,
    progress: Callback = None,
) -> Dict[str, Any]: ...
def export_recbole(
    dataset: PathLike, out: PathLike, min_seq_len: int = 5, max_seq_len: int = 10, keep_missing_titles: bool = False
) -> Dict[str, Any]: ...
def synth(
    out: PathLike,
    users: Optional[int] = None,
    items: Optional[int] = None,
    seed: Optional[int] = None,
    image_size: Optional[int] = None,
    force: bool = False,
) -> bool: ...
def split_cold(dataset: PathLike, out: PathLike, frac: float = 0.1, seed: int = 2024) -> Dict[str, Any]: ...
def report(
    runs: List[PathLike],
    out: PathLike,
    mask: str = "history",
    weights: str = "0.45,0.1,0.45",
    breakdowns: bool = True,
    progress: Callback = None,
) -> None: ...
def build_index(
    run: PathLike,
    lists: Optional[int] = None,
    probes: Optional[int] = None,
    candidates: Optional[int] = None,
    storage: Optional[str] = None,
    threads: int = 0,
    progress: Callback = None,
) -> Dict[str, Any]: ...
def compact_items(run: PathLike, threads: int = 0, progress: Callback = None) -> Dict[str, Any]: ...
