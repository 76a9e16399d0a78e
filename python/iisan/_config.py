"""Configurations given from Python: a dict (nested like the TOML file) or a path, and
overrides as ``{"train.batch": 32}`` or ``["train.batch=32"]``."""

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

Config = Union[str, "os.PathLike[str]", Mapping[str, Any], None]
Overrides = Union[Mapping[str, Any], Sequence[str], None]


def toml_value(v: Any) -> str:
    """``v`` as a TOML value: strings quoted, booleans lower-case, lists in brackets."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (str, os.PathLike)):
        return json.dumps(os.fspath(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"{v!r}: not a TOML value (str, int, float, bool or a list of them)")


def overrides(o: Overrides) -> List[str]:
    """``key=value`` strings, as the command line's ``--set`` takes them."""
    if o is None:
        return []
    if isinstance(o, Mapping):
        return [f"{k}={toml_value(v)}" for k, v in o.items()]
    if isinstance(o, str):
        raise TypeError("overrides: a string; give a dict or a list of 'key=value' strings")
    return [str(s) for s in o]


def _plain(x: Any) -> Any:
    """A dict's values made JSON-serialisable (paths as strings)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def source(config: Config) -> Tuple[Optional[str], Optional[str]]:
    """``(path, json)``: a TOML file's path, or a dict as JSON text, or neither (defaults)."""
    if config is None:
        return None, None
    if isinstance(config, Mapping):
        return None, json.dumps(_plain(config), allow_nan=True)
    if isinstance(config, (str, os.PathLike)):
        return os.fspath(config), None
    raise TypeError("config must be a path to a TOML file, a dict, or None (the defaults)")
