"""Grid cells and Z-order (Morton) codes for radius search in simulation coordinates.

Pure: no server. A position ``(x, y)`` (any finite floats) falls in the grid
cell ``(floor(x / cell), floor(y / cell))``; the cell's two coordinates,
offset by ``2**25`` and clamped to ``0 .. 2**26 - 1``, are interleaved bit by
bit into a 52-bit Z-order code, which a sorted-set score holds exactly. Cells
beyond ``±2**25`` cells from the origin share the edge cells: still exact
(every candidate is checked against its true position), only slower there.

A radius query covers the cells that a position within the radius can fall in
with a few disjoint ranges of codes, each with a lower bound of its positions'
squared distance, nearest first: :func:`ranked_cover` (the quadtree walk of
:func:`cover`, which fits the circle's box closely: for a search that reads every
range) or :func:`nearest_cover` (best-first from the point: for a search with a
limit, which stops once the limit's rows are nearer than the next range). The
script reads the members in those ranges and keeps those whose true position is
within the radius (:func:`within`, the same arithmetic as the server's script).
Neither enumerates the cells: their cost is a few blocks per range.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
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
    out = sorted((interleave(bx, by), interleave(bx, by) + (1 << (2 * lv)) - 1)
                 for bx, by, lv in _walk(x0, x1, y0, y1, max_ranges))
    merged: list[tuple[int, int]] = []
    for lo, hi in out:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _walk(x0: int, x1: int, y0: int, y1: int, max_ranges: int
          ) -> list[tuple[int, int, int]]:
    """:func:`cover`'s blocks ``(x, y, level)`` (a ``2**level`` square of cells from
    cell ``(x, y)``), disjoint, before adjacent ones are merged."""
    if not (0 <= x0 <= x1 <= TOP and 0 <= y0 <= y1 <= TOP):
        raise ValueError(f"bad cell box {(x0, x1, y0, y1)}")
    out: list[tuple[int, int, int]] = []
    partial = [(0, 0, BITS)]  # (block x, block y, level): a 2**level square
    while partial:
        level = partial[0][2]
        if level == 0 or len(out) + 4 * len(partial) > max_ranges:
            out += partial
            break
        half = 1 << (level - 1)
        nxt = []
        for bx, by, _ in partial:
            for cx, cy in ((bx, by), (bx + half, by), (bx, by + half), (bx + half, by + half)):
                ex, ey = cx + half - 1, cy + half - 1
                if ex < x0 or cx > x1 or ey < y0 or cy > y1:
                    continue
                if x0 <= cx and ex <= x1 and y0 <= cy and ey <= y1:
                    out.append((cx, cy, level - 1))
                else:
                    nxt.append((cx, cy, level - 1))
        partial = nxt
    return out


QUERY_MAX = 1e150
"""The largest radius of a query: every distance within it then squares to a finite
float (``near.lua`` compares squared distances; with a radius near 1e308 they overflowed
to infinity and results came by id, not nearest first). Points, stored or queried, may
be any finite floats: a difference of two that overflows, or squares to infinity, is
farther than such a radius, and is left out as it should be."""


def check_query(x: object, y: object, radius: object) -> tuple[float, float, float]:
    """The query point and radius as floats: finite, the radius from 0 to
    :data:`QUERY_MAX`."""
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
    if vals[2] > QUERY_MAX:
        raise InvalidInput(f"radius must be at most {QUERY_MAX:g} (its square must be a "
                           f"finite float), got {radius!r}")
    return vals[0], vals[1], vals[2]


def circle_cover(x: float, y: float, radius: float, cell: float,
                 max_ranges: int = MAX_RANGES) -> list[tuple[int, int]]:
    """The code ranges covering every cell that a point within ``radius`` of ``(x, y)``
    can fall in (the circle's bounding box, widened by one cell against rounding)."""
    return cover(*_box(x, y, radius, cell), max_ranges)


def _box(x: float, y: float, radius: float, cell: float) -> tuple[int, int, int, int]:
    """The cells ``x0, x1, y0, y1`` of the circle's bounding box, widened by one cell."""
    x0, x1 = cell_of(x - radius, cell) - 1, cell_of(x + radius, cell) + 1
    y0, y1 = cell_of(y - radius, cell) - 1, cell_of(y + radius, cell) + 1
    return max(x0, 0), min(x1, TOP), max(y0, 0), min(y1, TOP)


def _gap(c0: int, c1: int, v: float, cell: float, eps: float) -> float:
    """The distance from coordinate ``v`` to cells ``c0..c1`` of one axis, less ``eps``
    (at least 0): with the other axis's, a lower bound of the distance of every
    position that falls in those cells.

    An edge cell (0 or ``TOP``) reaches to infinity on its outer side (the clamped
    positions beyond the grid are in it); ``eps`` covers the rounding of ``v / cell``
    (a position can fall in a cell that it lies a few ulps outside) and of the
    distances, so that the bound never exceeds what the script computes for a
    position of those cells."""
    if c0 > 0 and v < (lo := (c0 - OFFSET) * cell):
        d = lo - v
    elif c1 < TOP and v > (hi := (c1 + 1 - OFFSET) * cell):
        d = v - hi
    else:
        return 0.0
    return d - eps if d > eps else 0.0


def _eps(x: float, y: float, radius: float, cell: float) -> float:
    """:func:`_gap`'s margin: far above the rounding of coordinates of this size."""
    return (abs(x) + abs(y) + radius + cell) * 2.0 ** -40


def ranked_cover(x: float, y: float, radius: float, cell: float,
                 max_ranges: int = MAX_RANGES) -> list[tuple[int, int, float]]:
    """:func:`circle_cover`'s blocks as ``(lo, hi, d2)`` ranges, nearest first: ``d2``
    is a lower bound of the squared distance of every position within the radius
    that the range can hold (:func:`_gap` of the block's cells in the circle's box;
    a position outside the box is outside the circle). Blocks that no position
    within the radius can fall in are left out; adjacent blocks are merged (the
    least bound of theirs), as few ranges as the walk allows: each costs a
    ``ZRANGE`` per key searched. At most ``max_ranges`` ranges, disjoint; no cell
    is enumerated (the cost is the walk's, a few blocks per range)."""
    x0, x1, y0, y1 = box = _box(x, y, radius, cell)
    eps, r2 = _eps(x, y, radius, cell), radius * radius
    blocks = []
    for bx, by, lv in _walk(*box, max_ranges):
        side = (1 << lv) - 1
        gx = _gap(max(bx, x0), min(bx + side, x1), x, cell, eps)
        gy = _gap(max(by, y0), min(by + side, y1), y, cell, eps)
        d2 = gx * gx + gy * gy
        if d2 <= r2:
            lo = interleave(bx, by)
            blocks.append((lo, lo + (1 << (2 * lv)) - 1, d2))
    return sorted(merged(blocks), key=lambda r: (r[2], r[0]))


def nearest_cover(x: float, y: float, radius: float, cell: float, budget: int
                  ) -> list[tuple[int, int, float]]:
    """Ranges as :func:`ranked_cover`'s (disjoint, nearest first, ``d2`` a lower bound,
    at most ``budget``), from a best-first quadtree walk: the block nearest the point
    is split first (the larger first among equally near ones), until one more split
    would exceed ``budget``. So the cells nearest the point come first as ranges of
    their own (every cell nearer than the nearest block left whole is one), and the
    rest of the circle is covered by blocks the coarser the farther, each ranked by
    its own bound: a search with a limit reads about the cells that its nearest
    rows are in. The work is the splits' (about ``budget / 3``), not the box's cells."""
    x0, x1, y0, y1 = _box(x, y, radius, cell)
    eps, r2 = _eps(x, y, radius, cell), radius * radius
    # the aligned blocks of the box's size that hold it: at most two along each axis
    level = max(x1 - x0, y1 - y0).bit_length()
    heap: list[tuple[float, int, int, int, int]] = []  # (d2, -level, code, x, y)
    for bx in sorted({x0 >> level << level, x1 >> level << level}):
        gx = _gap(max(bx, x0), min(bx + (1 << level) - 1, x1), x, cell, eps)
        for by in sorted({y0 >> level << level, y1 >> level << level}):
            gy = _gap(max(by, y0), min(by + (1 << level) - 1, y1), y, cell, eps)
            if gx * gx + gy * gy <= r2:
                heap.append((gx * gx + gy * gy, -level, interleave(bx, by), bx, by))
    heapq.heapify(heap)
    done: list[tuple[float, int, int]] = []  # single cells: (d2, code, code)
    count = len(heap)
    push, pop = heapq.heappush, heapq.heappop
    while heap and heap[0][1]:
        _, neg, lo, bx, by = heap[0]
        level = -neg - 1  # the children's
        half = 1 << level
        step = half * half
        mx, my = bx + half, by + half  # the second halves (the parent meets the box)
        xs = []
        if mx > x0:
            xs.append((0, bx, _gap(max(bx, x0), min(mx - 1, x1), x, cell, eps)))
        if mx <= x1:
            xs.append((step, mx, _gap(max(mx, x0), min(mx + half - 1, x1), x, cell, eps)))
        ys = []
        if my > y0:
            ys.append((0, by, _gap(max(by, y0), min(my - 1, y1), y, cell, eps)))
        if my <= y1:
            ys.append((2 * step, my, _gap(max(my, y0), min(my + half - 1, y1), y, cell, eps)))
        kids = []
        for kx, cx, gx in xs:
            for ky, cy, gy in ys:
                d2 = gx * gx + gy * gy
                if d2 <= r2:
                    kids.append((d2, -level, lo + kx + ky, cx, cy))
        if count - 1 + len(kids) > budget:
            break
        pop(heap)
        count += len(kids) - 1
        if level:
            for kid in kids:
                push(heap, kid)
        else:
            for kid in kids:
                done.append((kid[0], kid[2], kid[2]))
    done += [(d2, lo, lo + (1 << (-neg * 2)) - 1) for d2, neg, lo, _, _ in heap]
    return _in_order(done)


def _in_order(blocks: list[tuple[float, int, int]]) -> list[tuple[int, int, float]]:
    """Disjoint ``(d2, lo, hi)`` blocks as ``(lo, hi, d2)`` ranges, nearest first (ties
    by code); a block that follows an adjacent one in that order is merged into it
    (reading them in one ``ZRANGE`` is reading them in that order)."""
    blocks.sort()
    out: list[list[Any]] = []
    for d2, lo, hi in blocks:
        if out and out[-1][1] + 1 == lo:
            out[-1][1] = hi
        else:
            out.append([lo, hi, d2])
    return [(lo, hi, d2) for lo, hi, d2 in out]


def merged(ranges: Iterable[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """``ranges`` in code order, adjacent ones merged (their least ``d2``): for a read
    of every range (no limit), where the order does not matter, fewer ``ZRANGE``
    calls."""
    out: list[list[Any]] = []
    for lo, hi, d2 in sorted(ranges):
        if out and out[-1][1] + 1 == lo:
            out[-1][1] = hi
            out[-1][2] = min(out[-1][2], d2)
        else:
            out.append([lo, hi, d2])
    return [(lo, hi, d2) for lo, hi, d2 in out]


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
