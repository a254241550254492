"""A column write's numbers packed as MessagePack a whole column at a time (pure).

A column write (:class:`~agentmem.plans.colwrite.ColumnBatcher`) sends each number
column as the texts the server stores (``repr`` of a float, ``str`` of an int), in one
MessagePack argument per call. Made one value at a time, that is a bytes object per
value cut out of ``orjson``'s text of the column (``bytes.split``, about 40 ns) and then
packed again by ``msgpack`` (about 10 ns): 55-80 ns per value, against 16-40 here.

:func:`packed_texts` packs the whole column at once from ``orjson``'s text: the column
``[t0,t1,...]`` becomes ``h0 t0 h1 t1 ...``, where ``hi`` is the one-byte MessagePack
header of a string of ``len(ti)`` bytes (``fixstr``, under 32 bytes). Each comma is one
byte, as each header is, so the headers take the commas' places (and the ``[``'s): one
copy of the text and one scatter of the headers, in numpy. A call takes a run of the
column as one :class:`Raw` piece (:meth:`Packed.part`), and :func:`packb` packs a call's
argument with those pieces put in as they are: the very bytes ``msgpack.packb`` writes
for the same texts (``tests/unit/test_wirepack.py`` compares them).

Only a column whose text ``orjson`` writes as ``repr``/``str`` (no letter:
:mod:`agentmem.plans.numtext` says why; up to 64 texts of tiny values, ``0.0000...``,
are written by ``repr`` instead) and whose every text is under 32 bytes is packed; any
other is made value by value, as before. Imports: numpy, orjson and
msgpack only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
import orjson

__all__ = ["Packed", "Raw", "packb", "packed_texts", "raw"]

_PLAIN = b"0123456789.,-[]"
_FEW = 64
"""At most this many tiny values' texts are written by ``fn`` in a packed column; a
column with more is made value by value."""
_TINY = (b"[0.0000", b",0.0000", b"-0.0000")
"""How a text of ``1e-9 < |x| < 1e-4`` begins: the only one of orjson's without a letter
that ``repr`` writes otherwise (``0.00001`` for ``1e-05``): those few are written by
``repr`` in the packed text. ``0.0000`` elsewhere in a text (``20.00001``) is ``repr``'s
too."""
_ZEROS = b"0.0000"
"""What each of :data:`_TINY` ends with: a column whose text lacks it has no tiny value."""
_OPENS = b"[,"
_MINUS = ord("-")
_COMMA = ord(",")
_FIXSTR = 0xA0
_FIXSTR_MAX = 31


class Raw(bytes):
    """MessagePack bytes already packed: :func:`packb` puts them in as they are."""

    __slots__ = ()


class Packed:
    """A column's texts packed as MessagePack strings one after the other (``blob``),
    ``begins[i]`` where text ``i``'s header is (``begins[n]``: the end)."""

    __slots__ = ("begins", "blob")

    def __init__(self, blob: bytes, begins: Any) -> None:
        self.blob = blob
        self.begins = begins

    def part(self, a: int, b: int) -> Raw:
        """Texts ``a`` to ``b - 1`` as one MessagePack array."""
        begins = self.begins
        return Raw(_array_header(b - a) + self.blob[int(begins[a]):int(begins[b])])


def packed_texts(col: Sequence[Any], fn: Callable[[Any], str]) -> Packed | None:
    """``fn`` of every value of ``col`` (``repr`` for floats, ``str`` for ints, as
    :func:`~agentmem.plans.numtext.column_texts` takes it) packed, or None: the column is
    not one :func:`packed_texts` packs (see above; ``fn`` is not called)."""
    n = len(col)
    if n == 0:
        return None
    try:
        whole = orjson.dumps(col)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if whole.translate(None, _PLAIN):
        return None  # a letter (a bool, e-05, null, e+16): value by value
    if _ZEROS in whole:  # (one search for the three: each holds it)
        spliced = _tiny_by_fn(whole, col, fn)
        if spliced is None:
            return None
        whole = spliced
    out = np.frombuffer(whole, dtype=np.uint8)[:-1].copy()  # the "]" dropped
    begins = np.empty(n + 1, dtype=np.int64)
    begins[0] = 0  # the "["
    commas = np.flatnonzero(out == _COMMA)
    if len(commas) != n - 1:
        return None
    begins[1:n] = commas
    begins[n] = len(out)
    lens = np.diff(begins) - 1
    if int(lens.max()) > _FIXSTR_MAX or int(lens.min()) < 1:
        return None
    out[begins[:n]] = lens | _FIXSTR
    return Packed(out.tobytes(), begins)


def _tiny_by_fn(whole: bytes, col: Sequence[Any], fn: Callable[[Any], str]
                ) -> bytes | None:
    """``whole`` with each text of a tiny value (see :data:`_TINY`) written by ``fn``
    instead (``1e-05`` for orjson's ``0.00001``); None beyond :data:`_FEW` of them."""
    starts = _starts(whole)
    if starts is None:
        return None
    pieces: list[bytes] = []
    i = last = 0  # the text at ``last`` (a position in whole) is col[i]
    for at in starts:
        i += whole.count(b",", last, at)
        end = whole.find(b",", at)
        if end < 0:
            end = len(whole) - 1  # the last text: up to the "]"
        pieces += (whole[last:at], fn(col[i]).encode())
        last = end
    pieces.append(whole[last:])
    return b"".join(pieces)


def _starts(whole: bytes) -> list[int] | None:
    """Where each tiny value's text begins in ``whole``, in order; None beyond
    :data:`_FEW`. Each of :data:`_TINY` is one byte then :data:`_ZEROS`: with few
    ``0.0000`` in the text, one pass over them, taking the byte before each; with many
    (texts such as ``10.00001``, which are not tiny), a search for each mark, so that
    the work follows the tiny values, not those texts."""
    starts: list[int] = []
    if whole.count(_ZEROS) <= 2 * _FEW:
        at = whole.find(_ZEROS)
        while at >= 0:
            before = whole[at - 1]  # (at >= 1: whole begins with "[")
            if before in _OPENS:  # "[0.0000", ",0.0000": the text after the comma
                starts.append(at)
            elif before == _MINUS:  # "-0.0000": the text from the sign
                starts.append(at - 1)
            at = whole.find(_ZEROS, at + 1)
        return starts if len(starts) <= _FEW else None
    for mark in _TINY:
        skip = 0 if mark[0] == _MINUS else 1  # ",0.0000": the text after the comma
        at = whole.find(mark)
        while at >= 0:
            starts.append(at + skip)
            if len(starts) > _FEW:
                return None
            at = whole.find(mark, at + 1)
    return sorted(starts)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def packb(items: Sequence[Any], nested: int) -> bytes:
    """``msgpack.packb(items, use_bin_type=False)`` where :class:`Raw` elements of
    ``items``, and of the list ``items[nested]`` (a list: never itself a :class:`Raw`),
    go in as they are."""
    inner = items[nested]
    if not any(type(x) is Raw for x in inner) and not any(type(x) is Raw for x in items):
        out: bytes = msgpack.packb(items, use_bin_type=False)
        return out
    pieces = [_array_header(len(items))]
    _runs(pieces, items[:nested])
    pieces.append(_array_header(len(inner)))
    _runs(pieces, inner)
    _runs(pieces, items[nested + 1:])
    return b"".join(pieces)


def raw(value: Any) -> Raw:
    """``value`` packed once, to go in a :func:`packb` as it is (a call's constant part)."""
    return Raw(msgpack.packb(value, use_bin_type=False))


def _runs(pieces: list[bytes], items: Sequence[Any]) -> None:
    """The MessagePack of ``items``, one after the other, appended to ``pieces``: the
    :class:`Raw` ones as they are, each run of others packed at once."""
    run: list[Any] = []
    for x in items:
        if type(x) is Raw:
            if run:
                pieces.append(_bare(run))
                run = []
            pieces.append(x)
        else:
            run.append(x)
    if run:
        pieces.append(_bare(run))


def _bare(items: Sequence[Any]) -> bytes:
    """The MessagePack of ``items``, one after the other (no array header)."""
    if not items:
        return b""
    packed: bytes = msgpack.packb(list(items), use_bin_type=False)
    return packed[len(_array_header(len(items))):]
