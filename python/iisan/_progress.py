"""Progress of long tasks in Python: the events iisan's Rust side reports, drawn as a tqdm bar
when tqdm is installed, else as a line on stderr rewritten in place."""

import sys
import time
from typing import Any, Callable, Dict, Optional, Union

Event = Dict[str, Any]
ProgressArg = Union[bool, None, Callable[[Event], Any]]


def epoch_line(e: Event) -> str:
    """The line ``iisan train`` prints when an epoch ends."""
    if e.get("valid") is None:
        return (
            f"epoch {e['epoch']:>3}  loss {e['loss']:.4f}  train {e['train_seconds']:.1f}s"
            f" ({e['steps']} steps; no evaluation)"
        )
    star = "  *" if e["improved"] else ""
    return (
        f"epoch {e['epoch']:>3}  loss {e['loss']:.4f}  valid {e['metric']} {e['valid']:.4f}"
        f" (mask {e['mask']})  train {e['train_seconds']:.1f}s  eval {e['eval_seconds']:.1f}s{star}"
    )


class Bar:
    """The default progress display: epoch lines and notes, and while a task runs a bar of its
    steps, items or bytes: tqdm's (a notebook widget in Jupyter) when tqdm is installed,
    otherwise one line rewritten in place. Bars are drawn only on a terminal or in a notebook;
    written to a file or a pipe, only the lines appear (as with ``iisan`` itself)."""

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stderr
        self.bar = None
        self.task: Optional[Event] = None
        self.done = 0
        self.message = ""
        self.shown = 0.0
        notebook = "ipykernel" in sys.modules
        self.live = notebook or bool(getattr(self.file, "isatty", lambda: False)())
        self.tqdm = None
        if self.live:
            try:
                from tqdm.auto import tqdm  # type: ignore

                self.tqdm = tqdm
            except ImportError:
                pass

    def __call__(self, e: Event) -> None:
        kind = e["event"]
        if kind == "start":
            self._close()
            self.task, self.done, self.message = e, e["done"], ""
            if self.tqdm is not None:
                self.bar = self.tqdm(
                    total=e["total"],
                    initial=e["done"],
                    desc=e["label"],
                    unit="B" if e["unit"] == "bytes" else e["unit"][:-1],
                    unit_scale=e["unit"] == "bytes",
                    file=self.file,
                    leave=False,
                )
        elif kind == "advance":
            self.done += e["n"]
            if self.bar is not None:
                self.bar.update(e["n"])
            else:
                self._line()
        elif kind == "message":
            self.message = e["message"]
            if self.bar is not None:
                self.bar.set_postfix_str(e["message"], refresh=False)
        elif kind == "finish":
            self._close()
        elif kind == "epoch":
            self._print(epoch_line(e))
        elif kind == "note":
            self._print(e["line"])

    def _line(self) -> None:
        now = time.monotonic()
        if not self.live or self.task is None or now - self.shown < 0.2:
            return
        self.shown = now
        t = self.task
        text = f"\r{t['label']}: {self.done}/{t['total']} {t['unit']} {self.message}"
        self.file.write(text[:120].ljust(80))
        self.file.flush()

    def _clear(self) -> None:
        if self.live and self.shown:
            self.file.write("\r" + " " * 80 + "\r")
            self.shown = 0.0

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            self._clear()
            print(line, file=self.file, flush=True)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            self._clear()
            self.file.flush()
        self.task = None


def callback(progress: ProgressArg) -> Optional[Callable[[Event], Any]]:
    """The callable the Rust side is given: a new :class:`Bar` for True, nothing for False or
    None, the caller's own callable otherwise."""
    if progress is True:
        return Bar()
    if progress is False or progress is None:
        return None
    if callable(progress):
        return progress
    raise TypeError("progress must be True, False, None or a callable taking one dict")
