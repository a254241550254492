"""The code ranges of a radius search (``agentmem.plans.grid``), without a server: a
search with a limit gets :func:`nearest_cover` (best-first from the point), one that
reads every range :func:`ranked_cover`. Both must be disjoint (no member read twice),
nearest first, within their budget, and hold every position within the radius in a
range whose bound is at most the squared distance the script computes for it."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agentmem.plans.grid import (
    MAX_RANGES,
    OFFSET,
    TOP,
    code,
    interleave,
    merged,
    nearest_cover,
    ranked_cover,
)
from agentmem.plans.radius import LIMITED_RANGES, Circle


def _check(ranges: list[tuple[int, int, float]], x: float, y: float, radius: float,
           cell: float, budget: int, rnd: random.Random) -> None:
    assert 0 < len(ranges) <= budget
    assert all(0 <= lo <= hi < 2**52 for lo, hi, _ in ranges)
    assert [d2 for _, _, d2 in ranges] == sorted(d2 for _, _, d2 in ranges)
    spans = sorted((lo, hi) for lo, hi, _ in ranges)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # disjoint
    r2 = radius * radius
    points = [(x, y), (x + radius, y), (x, y - radius), (x - radius * 0.6, y + radius * 0.8)]
    for _ in range(60):
        a, d = rnd.uniform(0, 2 * math.pi), radius * math.sqrt(rnd.random())
        points.append((x + d * math.cos(a), y + d * math.sin(a)))
    for px, py in points:
        dx, dy = px - x, py - y
        d2 = dx * dx + dy * dy  # the script's arithmetic
        if d2 > r2:
            continue
        z = code(px, py, cell)
        held = [b for lo, hi, b in ranges if lo <= z <= hi]
        assert len(held) == 1, (px, py)
        assert held[0] <= d2, (px, py, held[0], d2)


COORD = st.one_of(st.floats(-60, 60), st.floats(-1e9, 1e9), st.sampled_from(
    [0.0, 50.0, -0.25, 2.0**25, -(2.0**25), 1e12, -1e12, 1e300]))


@settings(max_examples=400)
@given(COORD, COORD, st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 12.0, 40.0, 1e4]),
       st.sampled_from([0.01, 0.05, 0.25, 1.0, 7.0, 1e6]),
       st.sampled_from([8, 24, LIMITED_RANGES, 256]), st.integers(0, 2**32))
def test_the_ranges_hold_every_position_within_the_radius(
        x: float, y: float, radius: float, cell: float, budget: int, seed: int) -> None:
    rnd = random.Random(seed)
    _check(nearest_cover(x, y, radius, cell, budget), x, y, radius, cell, budget, rnd)
    _check(ranked_cover(x, y, radius, cell, budget), x, y, radius, cell, budget, rnd)


@given(st.floats(-60, 60), st.floats(-60, 60), st.floats(0, 20),
       st.sampled_from([0.05, 0.25, 1.0]))
def test_merged_ranges_are_the_same_codes_in_code_order(x: float, y: float, radius: float,
                                                        cell: float) -> None:
    for ranges in (nearest_cover(x, y, radius, cell, LIMITED_RANGES),
                   ranked_cover(x, y, radius, cell)):
        one = merged(ranges)
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(one))
        assert sum(hi - lo + 1 for lo, hi, _ in one) == sum(hi - lo + 1 for lo, hi, _ in ranges)
        for lo, hi, d2 in one:
            parts = [b for a, c, b in ranges if lo <= a and c <= hi]
            assert d2 == min(parts)


def test_the_nearest_cells_come_first_each_a_range_of_its_own() -> None:
    """The benchmark's query (a cell corner, radius 20 cells): the 4 cells at the corner
    first, each alone, then their neighbours, before any block of several cells."""
    ranges = nearest_cover(50.0, 50.0, 5.0, 0.25, LIMITED_RANGES)
    c = OFFSET + 200  # 50 / 0.25
    corner = {interleave(c + i, c + j) for i in (-1, 0) for j in (-1, 0)}
    assert {lo for lo, hi, d2 in ranges[:4] if lo == hi and d2 == 0.0} == corner
    first_block = next(i for i, (lo, hi, _) in enumerate(ranges) if hi > lo + 1)
    assert first_block >= 12  # the corner's 4 and at least the 8 cells around them
    assert ranges[first_block][2] > 0.2**2  # a block only after every cell within 0.2


def test_a_huge_box_costs_the_budget_not_its_cells() -> None:
    """10^14 cells in the circle's box (radius 10^4, cell 10^-3): no cell is enumerated
    (the old ranking gave up above 4,096 cells; the walk's blocks are all it looks at)."""
    for limited in (True, False):
        circle = Circle.of(3.0, -7.0, 1e4, 1e-3, limited=limited)
        assert len(circle.ranges) <= (LIMITED_RANGES if limited else MAX_RANGES)
        assert circle.ranges[0][2] == 0.0
    ranges = nearest_cover(3.0, -7.0, 1e4, 1e-3, LIMITED_RANGES)
    lo, hi, _ = ranges[0]  # the point's block, 25 levels below the box's: 512 x 512 cells
    assert lo <= code(3.0, -7.0, 1e-3) <= hi
    assert hi - lo + 1 <= 4**9
    ranges = nearest_cover(3.0004, -7.0004, 1e4, 1e-3, 256)  # a budget that reaches a cell
    assert ranges[0][0] == ranges[0][1] == code(3.0004, -7.0004, 1e-3)
    assert ranges[1][2] > 0.0


def test_clamped_edge_cells_reach_to_infinity() -> None:
    """A position beyond the grid is in an edge cell: its bound must not be the edge
    cell's own square (the position is far from it)."""
    for ranges in (nearest_cover(1e12, 0.0, 60.0, 0.5, LIMITED_RANGES),
                   ranked_cover(1e12, 0.0, 60.0, 0.5)):
        z = code(1e12, 0.0, 0.5)
        assert any(lo <= z <= hi and d2 == 0.0 for lo, hi, d2 in ranges)
    z = interleave(TOP, OFFSET)
    assert any(lo <= z <= hi and d2 == 0.0
               for lo, hi, d2 in nearest_cover(2.0**26, 0.0, 1.0, 1.0, LIMITED_RANGES))
