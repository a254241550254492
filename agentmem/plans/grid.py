"""Grid cells and Z-order (Morton) codes for radius search in simulation coordinates.

Pure: no server. A position ``(x, y)`` (any finite floats) falls in the grid
cell ``(floor(x / cell), floor(y / cell))``; the cell's two coordinates,
offset by ``2**25`` and clamped to ``0 .. 2**26 - 1``, are interleaved bit by
bit into a 52-bit Z-order code, which a sorted-set score holds exactly. Cells
beyond ``±2**25`` cells from the origin share the edge cells: still exact
(every candidate is checked against its true position), only slower there.

A radius query covers the circle's bounding box of cells with a few ranges of
codes (:func:`cover`), reads the members in those ranges, and keeps those whose
true position is within the radius (:func:`within`, the same arithmetic as the
server's script).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from typing import Any

from agentmem.errors import InvalidInput

BITS = 26
"""Bits per axis of a cell coordinate; a code has ``2 * BITS`` = 52 bits (< 2**53)."""
OFFSET = 1 << (BITS - 1)
TOP = (1 << BITS) - 1
MAX_RANGES = 48
"""At most this many code ranges per query (and per key); a box that would need
more is covered by larger blocks, whose extra cells the exact filter drops."""

_SPREAD = [0] * 256
for _i in range(256):
    _v = 0
    for _b in range(8):
        if _i >> _b & 1:
            _v |= 1 << (2 * _b)
    _SPREAD[_i] = _v
del _i, _v, _b
_SPREAD13 = [_SPREAD[i & 255] | _SPREAD[i >> 8] << 16 for i in range(1 << 13)]
"""13 bits spread to the even places of 26: a cell coordinate is two lookups."""


def check_cell(cell: object) -> float:
    """A grid cell size: a finite float > 0."""
    if isinstance(cell, bool) or not isinstance(cell, (int, float)) or not (
            math.isfinite(cell) and cell > 0):
        raise InvalidInput(f"the grid cell size must be a finite number > 0, got {cell!r}")
    return float(cell)


def cell_of(v: float, cell: float) -> int:
    """The clamped, offset cell coordinate of one position coordinate (a quotient beyond
    the grid, even an infinite one, ``1.7e308 / 0.001``, is the edge cell, as in Lua)."""
    q = v / cell
    if not -OFFSET <= q <= OFFSET:
        return 0 if q < 0 else TOP
    c = math.floor(q) + OFFSET
    return 0 if c < 0 else TOP if c > TOP else c


def interleave(cx: int, cy: int) -> int:
    """The Z-order code of cell ``(cx, cy)``: bits of ``cx`` at even, ``cy`` at odd places."""
    s = _SPREAD13
    return (s[cx & 8191] | s[cx >> 13] << 26) | (s[cy & 8191] | s[cy >> 13] << 26) << 1


def code(x: float, y: float, cell: float) -> int:
    """The Z-order code of the cell of position ``(x, y)`` (on the write path: inlined)."""
    qx, qy = x / cell, y / cell
    # beyond the grid (an infinite quotient too): the edge cell, as cell_of and Lua
    cx = math.floor(qx) + OFFSET if -OFFSET <= qx <= OFFSET else (0 if qx < 0 else TOP)
    cy = math.floor(qy) + OFFSET if -OFFSET <= qy <= OFFSET else (0 if qy < 0 else TOP)
    if not (0 <= cx <= TOP):
        cx = 0 if cx < 0 else TOP
    if not (0 <= cy <= TOP):
        cy = 0 if cy < 0 else TOP
    s = _SPREAD13
    return (s[cx & 8191] | s[cx >> 13] << 26) | (s[cy & 8191] | s[cy >> 13] << 26) << 1


def cover(x0: int, x1: int, y0: int, y1: int, max_ranges: int = MAX_RANGES
          ) -> list[tuple[int, int]]:
    """Inclusive code ranges, ascending and disjoint, that hold every cell of the box
    ``[x0, x1] x [y0, y1]`` (cell coordinates) and as few others as ``max_ranges`` allows.

    A quadtree walk from the whole grid down: blocks inside the box are taken whole,
    blocks outside are dropped, blocks across its edge are split, level by level,
    while the ranges stay within the budget; then the edge blocks are taken whole.
    """
    if not (0 <= x0 <= x1 <= TOP and 0 <= y0 <= y1 <= TOP):
        raise ValueError(f"bad cell box {(x0, x1, y0, y1)}")
    out: list[tuple[int, int]] = []
    partial = [(0, 0, BITS)]  # (block x, block y, level): a 2**level square
    while partial:
        level = partial[0][2]
        if level == 0 or len(out) + 4 * len(partial) > max_ranges:
            for bx, by, lv in partial:
                base = interleave(bx, by)
                out.append((base, base + (1 << (2 * lv)) - 1))
            break
        half = 1 << (level - 1)
        nxt = []
        for bx, by, _ in partial:
            for cx, cy in ((bx, by), (bx + half, by), (bx, by + half), (bx + half, by + half)):
                ex, ey = cx + half - 1, cy + half - 1
                if ex < x0 or cx > x1 or ey < y0 or cy > y1:
                    continue
                if x0 <= cx and ex <= x1 and y0 <= cy and ey <= y1:
                    base = interleave(cx, cy)
                    out.append((base, base + (1 << (2 * (level - 1))) - 1))
                else:
                    nxt.append((cx, cy, level - 1))
        partial = nxt
    out.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in out:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def check_query(x: object, y: object, radius: object) -> tuple[float, float, float]:
    """The query point and radius as floats: finite, radius >= 0."""
    vals = []
    for name, v in (("x", x), ("y", y), ("radius", radius)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidInput(f"{name} must be a finite number, got {v!r}")
        try:
            f = float(v)  # an int too large for a float overflows
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            raise InvalidInput(f"{name} must be a finite number, got {v!r}")
        vals.append(f)
    if vals[2] < 0:
        raise InvalidInput(f"radius must be >= 0, got {radius!r}")
    return vals[0], vals[1], vals[2]


def circle_cover(x: float, y: float, radius: float, cell: float,
                 max_ranges: int = MAX_RANGES) -> list[tuple[int, int]]:
    """The code ranges covering every cell that a point within ``radius`` of ``(x, y)``
    can fall in (the circle's bounding box, widened by one cell against rounding)."""
    x0, x1 = cell_of(x - radius, cell) - 1, cell_of(x + radius, cell) + 1
    y0, y1 = cell_of(y - radius, cell) - 1, cell_of(y + radius, cell) + 1
    return cover(max(x0, 0), min(x1, TOP), max(y0, 0), min(y1, TOP), max_ranges)


RANK_CELLS = 4096
"""Boxes of at most this many cells get their ranges ranked by distance."""


def ranked_cover(x: float, y: float, radius: float, cell: float,
                 max_ranges: int = MAX_RANGES) -> list[tuple[int, int, float]]:
    """:func:`circle_cover`'s ranges as ``(lo, hi, d2)``, nearest first: ``d2`` is the
    least squared distance from ``(x, y)`` to a cell of the circle's box whose code the
    range holds, a lower bound for every position within the radius that the range
    can hold (one outside the box is outside the circle). A box of more than
    :data:`RANK_CELLS` cells, or touching the clamped edge cells, is not ranked
    (every ``d2`` is 0)."""
    ranges = circle_cover(x, y, radius, cell, max_ranges)
    x0, x1 = cell_of(x - radius, cell) - 1, cell_of(x + radius, cell) + 1
    y0, y1 = cell_of(y - radius, cell) - 1, cell_of(y + radius, cell) + 1
    if x0 <= 0 or y0 <= 0 or x1 >= TOP or y1 >= TOP or (
            (x1 - x0 + 1) * (y1 - y0 + 1) > RANK_CELLS):
        return [(lo, hi, 0.0) for lo, hi in ranges]
    fine = _cell_ranges(x, y, radius, cell, (x0, x1, y0, y1), max_ranges)
    if fine is not None:
        return fine
    los = [lo for lo, _ in ranges]
    best = [math.inf] * len(ranges)
    for c, d2 in _cell_bounds(x, y, cell, (x0, x1, y0, y1)):
        i = bisect.bisect_right(los, c) - 1
        if d2 < best[i]:
            best[i] = d2
    out = [(lo, hi, 0.0 if math.isinf(d) else d) for (lo, hi), d in zip(ranges, best,
                                                                        strict=True)]
    return sorted(out, key=lambda r: (r[2], r[0]))


def _cell_bounds(x: float, y: float, cell: float, box: tuple[int, int, int, int]
                 ) -> Iterator[tuple[int, float]]:
    """Each cell of ``box`` as ``(code, d2)``: ``d2`` the least squared distance from
    ``(x, y)`` to the cell."""
    x0, x1, y0, y1 = box
    for cx in range(x0, x1 + 1):
        left = (cx - OFFSET) * cell
        dx = left - x if x < left else x - (left + cell) if x > left + cell else 0.0
        for cy in range(y0, y1 + 1):
            bottom = (cy - OFFSET) * cell
            dy = bottom - y if y < bottom else y - (bottom + cell) if y > bottom + cell else 0.0
            yield interleave(cx, cy), dx * dx + dy * dy


def _cell_ranges(x: float, y: float, radius: float, cell: float,
                 box: tuple[int, int, int, int], max_ranges: int
                 ) -> list[tuple[int, int, float]] | None:
    """The box's cells that a point within ``radius`` can fall in (their least distance
    at most ``radius`` plus one cell, against rounding), as ranges of consecutive codes
    of one distance bound each, nearest first; ``None`` when that takes more than
    ``max_ranges`` ranges. Finer than the cover's ranges, so that a search with a limit
    stops after the cells nearest the centre."""
    admit = (radius + cell) ** 2
    cells = sorted((c, d2) for c, d2 in _cell_bounds(x, y, cell, box) if d2 <= admit)
    out: list[list[Any]] = []
    for c, d2 in cells:
        if out and out[-1][1] == c - 1 and out[-1][2] == d2:
            out[-1][1] = c
        else:
            out.append([c, c, d2])
            if len(out) > max_ranges:
                return None
    return sorted(((lo, hi, d2) for lo, hi, d2 in out), key=lambda r: (r[2], r[0]))


def within(px: float, py: float, x: float, y: float, r2: float) -> bool:
    """Whether ``(px, py)`` is within the radius whose square is ``r2``: the server
    script's test, operation for operation."""
    dx = px - x
    dy = py - y
    return dx * dx + dy * dy <= r2


def range_args(ranges: Iterable[tuple[int, int, float]]) -> list[str]:
    """Ranked ranges as script arguments (a count, then ``lo hi d2`` triples)."""
    flat = [v for lo, hi, d2 in ranges for v in (str(lo), str(hi), repr(d2))]
    return [str(len(flat) // 3), *flat]
