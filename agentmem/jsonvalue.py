"""Strict JSON for ``details``: numpy values converted, NaN and unknown types refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        raise TypeError("sets have no JSON form; use a list")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
)


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text or raise ``ValueError``."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"details cannot be stored as JSON: {exc}") from None


def normalize(value: Any) -> Any:
    """Return the plain JSON value that ``value`` reads back as (tuples become lists)."""
    if value is None or isinstance(value, (str, bool, int)) and not isinstance(value, np.generic):
        return value
    return json.loads(dumps(value))
