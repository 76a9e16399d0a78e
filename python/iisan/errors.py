"""The exceptions of iisan: one class per kind of error, all under :class:`Error`.

Each carries the message the ``iisan`` command line prints (one line, naming the file and
the place), ``exit_code`` (the command line's: 2 for bad input, 1 for an internal failure),
and, where there is one, ``path`` (the file) and ``line`` (1-based). An interrupted training
or encode raises Python's own ``KeyboardInterrupt``.
"""

from typing import Optional


class Error(Exception):
    """Any error of iisan."""

    path: Optional[str] = None
    line: Optional[int] = None
    exit_code: int = 1


class ConfigError(Error, ValueError):
    """An invalid configuration value or override (the key is named)."""


class DataError(Error, ValueError):
    """A malformed or inconsistent input file: a dataset, a run directory, a cache (``path``
    names it, ``line`` the line when there is one)."""


class InputError(Error, ValueError):
    """An argument the library cannot take: an unknown item id, an empty history, a known id
    given to ``add_items``, an undecodable image."""


class IoError(Error, OSError):
    """A file that cannot be read or written (``path`` names it)."""


class DivergedError(Error, ArithmeticError):
    """Training produced a non-finite loss or gradient; the message names the epoch, the step
    and the last good checkpoint."""


class InternalError(Error, RuntimeError):
    """A failure inside the library (a tensor operation, a thread that could not start)."""


__all__ = [
    "Error",
    "ConfigError",
    "DataError",
    "InputError",
    "IoError",
    "DivergedError",
    "InternalError",
]
