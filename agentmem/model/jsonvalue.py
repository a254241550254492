"""Strict JSON for ``details``: numpy values converted, NaN and unknown types refused.

Plain values (str, int, finite float, bool, None, lists, tuples, dicts with
string keys) are checked by a walk and written by orjson; anything else (numpy
values, non-string keys) takes the standard library's encoder with a converter,
which also refuses what JSON cannot hold.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson


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


class _Slow(Exception):
    pass


_NOT_UTF8 = "details cannot be stored as JSON: text with a lone surrogate is not UTF-8"
_NOT_FINITE = "details cannot be stored as JSON: NaN and infinity are not JSON"


def _utf8(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(_NOT_UTF8) from None


def _check(value: Any, depth: int) -> None:
    """Return if ``value`` is plain JSON; raise _Slow if it needs conversion.

    A container's str, int, bool and None members are checked in its own loop (most
    ``details`` are one level of them): one call per container, not per member."""
    t = type(value)
    if t is str:
        _utf8(value)
        return
    if t is int or t is bool or value is None:
        return
    if t is float:
        if value - value != 0.0:
            raise ValueError(_NOT_FINITE)
        return
    if depth > 100:
        raise _Slow
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise _Slow
            if not k.isascii():
                _utf8(k)
            tv = type(v)
            if tv is str:
                if not v.isascii():
                    _utf8(v)
            elif tv is float:
                if v - v != 0.0:
                    raise ValueError(_NOT_FINITE)
            elif not (tv is int or tv is bool or v is None):
                _check(v, depth + 1)
        return
    if t is list or t is tuple:
        for v in value:
            tv = type(v)
            if tv is str:
                if not v.isascii():
                    _utf8(v)
            elif tv is float:
                if v - v != 0.0:
                    raise ValueError(_NOT_FINITE)
            elif not (tv is int or tv is bool or v is None):
                _check(v, depth + 1)
        return
    raise _Slow


def _slow_dumps(value: Any) -> bytes:
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(_NOT_UTF8) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"details cannot be stored as JSON: {exc}") from None


MAX_BYTES = 512 * 1024 * 1024 - 1
"""The longest value a Redis server takes in one argument (``proto-max-bulk-len``)."""


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON text or raise ``ValueError``."""
    try:
        _check(value, 0)
    except _Slow:
        out = _slow_dumps(value)
    else:
        try:
            out = orjson.dumps(value)
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits
            out = _slow_dumps(value)
    if len(out) > MAX_BYTES:
        raise ValueError(f"details cannot be stored: {len(out):,} bytes of JSON, more than "
                         f"a Redis value holds ({MAX_BYTES + 1:,} bytes)")
    return out


def _copy(value: Any, depth: int) -> Any:
    """A plain copy of ``value`` (tuples become lists), or raise _Slow. Members that are
    str, int, bool or None are handled in their container's loop, as in :func:`_check`."""
    t = type(value)
    if t is str:
        _utf8(value)
        return value
    if t is int or t is bool or value is None:
        return value
    if t is float:
        if value - value != 0.0:
            raise ValueError(_NOT_FINITE)
        return value
    if depth > 100:
        raise _Slow
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Slow
            if not k.isascii():
                _utf8(k)
            tv = type(v)
            if tv is str:
                if not v.isascii():
                    _utf8(v)
            elif tv is float:
                if v - v != 0.0:
                    raise ValueError(_NOT_FINITE)
            elif not (tv is int or tv is bool or v is None):
                v = _copy(v, depth + 1)
            out[k] = v
        return out
    if t is list or t is tuple:
        out_list: list[Any] = []
        add = out_list.append
        for v in value:
            tv = type(v)
            if tv is str:
                if not v.isascii():
                    _utf8(v)
            elif tv is float:
                if v - v != 0.0:
                    raise ValueError(_NOT_FINITE)
            elif not (tv is int or tv is bool or v is None):
                v = _copy(v, depth + 1)
            add(v)
        return out_list
    raise _Slow


def normalize(value: Any) -> Any:
    """Return the plain JSON value that ``value`` reads back as (tuples become lists)."""
    try:
        return _copy(value, 0)
    except _Slow:
        return json.loads(_slow_dumps(value))  # exact for integers beyond 64 bits
