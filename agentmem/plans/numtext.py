"""The texts of a column of numbers, a whole column at a time (pure).

A float is stored as ``repr`` writes it and an int as ``str`` does (the row path,
:mod:`agentmem.plans.writeargs`, writes each value so). ``repr`` of a float costs
170-430 ns (the longer the shortest round-trip text, the more); ``orjson.dumps`` of the
whole column writes the same shortest round-trip digits at about 50 ns per value, and
``bytes.split`` cuts it into one text per value (issue 19, item 3).

The two write the same text except where orjson writes otherwise than ``repr``:
``0.00001`` for ``1e-05`` (any ``1e-9 < |x| < 1e-4``, positional or with a one-digit
exponent), ``null`` for a NaN or an infinity, ``true``/``false`` for a bool. Every
such text holds ``e-``, ``0.0000``, ``null``, ``true`` or ``false``; a column whose
output holds none of them is taken whole, and otherwise each value whose text holds one
is written by ``repr``/``str`` instead (a few in a column of ordinary values; orjson
3.11.7 and later write the rest as ``repr``: ``1e+16``, not ``1e16``).

:func:`column_texts` checks orjson once, on first use, against ``repr`` and ``str`` on
values of every kind and magnitude (an orjson that writes any of them otherwise is
not used: every column is then written value by value); ``tests/unit/test_number_texts.py``
compares them on millions of values. Imports: the standard library and orjson only.
"""

from __future__ import annotations

import random
import struct
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

import orjson

__all__ = ["column_texts"]

_MARKS = (b"e-", b"0.0000", b"null", b"true", b"false")
"""What every text orjson writes otherwise than ``repr``/``str`` holds."""

_PLAIN = b"0123456789.,-[]"
"""What a column's text holds when it holds no letter: then of the marks only
``0.0000`` can be in it (one pass of ``bytes.translate`` against one per mark)."""

_ZEROS = (b"0.0000",)

_FEW = 64
"""Up to this many marks in a column, the text of each is found by counting the commas
before it (a scan in C up to it); beyond, by where each text ends."""

_usable: list[bool] = []
"""Whether this orjson writes as ``repr``/``str`` (decided on first use)."""


def _by_orjson(col: Sequence[Any], fn: Callable[[Any], str]) -> list[Any] | None:
    """The texts from orjson (bytes; ``fn``'s where orjson's could differ), or None."""
    try:
        whole = orjson.dumps(col)
    except (orjson.JSONEncodeError, TypeError):  # beyond 64-bit ints, another type
        return None
    out: list[Any] = whole[1:-1].split(b",")
    if len(out) != len(col):
        return None
    found: set[int] = set()  # where a mark is, in whole
    for mark in _MARKS if whole.translate(None, _PLAIN) else _ZEROS:
        at = whole.find(mark)
        while at >= 0:
            found.add(at)
            at = whole.find(mark, at + 1)
    if not found:
        return out
    if len(found) <= _FEW:  # the texts holding a mark by counting the commas before it
        i = last = 0  # the text at ``last`` (a position in whole) is out[i]
        for at in sorted(found):
            i += whole.count(b",", last, at)
            last = at
            out[i] = fn(col[i])
        return out
    # many: by where each text ends (its comma's, or the bracket's, position)
    ends = list(accumulate(map((1).__add__, map(len, out))))
    for i in {bisect_right(ends, at) for at in found}:
        out[i] = fn(col[i])
    return out


def _samples() -> list[float | int]:
    """Values of every kind: each decimal magnitude's powers, neighbours and random
    values, zeros, the extremes, random bit patterns, ints."""
    rnd = random.Random(19)
    out: list[float | int] = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                              1.7976931348623157e308, 0.1 + 0.2, 1 / 3, 2.0 ** 53]
    for e in range(-323, 309):
        p = float(f"1e{e}")
        out += [p, -p, p * (1 + 2 ** -52), p * (1 - 2 ** -53), rnd.uniform(1, 10) * p,
                round(rnd.uniform(1, 10), 2) * p]
    out += [rnd.uniform(-1000, 1000) for _ in range(500)]
    out += [round(rnd.uniform(-1000, 1000), 2) for _ in range(500)]
    for _ in range(2000):
        (v,) = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))
        if v - v == 0.0:  # finite
            out.append(v)
    out += [0, 1, -1, 7, 10 ** 18, -(2 ** 63), 2 ** 63 - 1, 2 ** 64 - 1]
    return out


def _check() -> bool:
    """Whether orjson's texts, as :func:`_by_orjson` takes them, are ``repr``'s."""
    values = _samples()
    for kind, fn in ((float, repr), (int, str)):
        col = [v for v in values if type(v) is kind]
        # whole (many marks) and in parts of fewer marks than _FEW
        for part in (col, *(col[k:k + _FEW // 2] for k in range(0, len(col), _FEW // 2))):
            got = _by_orjson(part, fn)
            if got is None or [t if type(t) is str else t.decode() for t in got] != \
                    list(map(fn, part)):
                return False
    return True

def column_texts(col: Sequence[Any], fn: Callable[[Any], str]) -> list[Any]:
    """``fn`` (``repr`` for a column of floats, ``str`` for one of ints) of every value
    of ``col``, as that text or its ASCII bytes (both go to the server alike)."""
    if not col:
        return []
    if not _usable:
        _usable.append(_check())
    if _usable[0]:
        got = _by_orjson(col, fn)
        if got is not None:
            return got
    return list(map(fn, col))
