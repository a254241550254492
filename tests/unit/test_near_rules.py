"""The parts of test_near.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pydantic import BaseModel

from agentmem import Action, declare
from agentmem.errors import SchemaError
from agentmem.model.schema import GridIndex, SortedIndex
from agentmem.plans.grid import OFFSET, TOP, cell_of, code, interleave

# -- the grid, without a server ------------------------------------------------------


def _deinterleave(z: int) -> tuple[int, int]:
    x = y = 0
    for b in range(26):
        x |= (z >> (2 * b) & 1) << b
        y |= (z >> (2 * b + 1) & 1) << b
    return x, y


def test_cells_clamp_at_the_edges() -> None:
    assert cell_of(0.0, 1.0) == OFFSET
    assert cell_of(-0.5, 1.0) == OFFSET - 1
    assert cell_of(2.5, 0.5) == OFFSET + 5
    assert cell_of(1e300, 1.0) == TOP
    assert cell_of(-1e300, 1.0) == 0
    assert code(0.0, 0.0, 1.0) == interleave(OFFSET, OFFSET)


# -- against a server ----------------------------------------------------------------

TYPES = ("move", "gather", "attack")


def _world(n: int, *, agents: int = 3, seed: int = 1, spread: float = 40.0) -> list[Action]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if i % 11 == 0:
            pos = None
        elif i % 17 == 0:  # far away: clamped to the edge cells, still exact
            pos = (rnd.choice([-1e12, 1e12]), rnd.uniform(-spread, spread))
        elif i % 13 == 0:  # shared positions: ties ordered by id
            pos = (1.25, -3.5)
        else:
            pos = (rnd.uniform(-spread, spread), rnd.uniform(-spread, spread))
        out.append(Action(agent_id=f"a{i % agents}", simulation_id="s1",
                          step_number=i // agents, action_type=TYPES[i % 3], position=pos,
                          reward=round(rnd.random(), 3)))
    return out


def _brute(stored: list[Action], x: float, y: float, radius: float, *,
           agent: str | None = None, types: tuple[str, ...] | None = None,
           start: int | None = None, end: int | None = None,
           limit: int | None = None) -> list[tuple[str, float]]:
    rows = []
    for a in stored:
        if a.position is None or (agent is not None and a.agent_id != agent):
            continue
        if types is not None and a.action_type not in types:
            continue
        if (start is not None and a.step_number < start) or (
                end is not None and a.step_number > end):
            continue
        dx, dy = a.position[0] - x, a.position[1] - y
        d2 = dx * dx + dy * dy
        if d2 <= radius * radius:
            rows.append((d2, str(a.action_id)))
    rows.sort(key=lambda r: (r[0], r[1].encode()))
    return [(i, math.sqrt(d2)) for d2, i in rows[:limit]]


def _got(results: list[Any]) -> list[tuple[str, float]]:
    return [(r.record.action_id, r.distance) for r in results]


def _placed() -> Action:
    return Action(agent_id="a0", simulation_id="s1", step_number=900, action_type="move",
                  position=(1.0, 2.0))


class Beacon(BaseModel):
    beacon_id: str
    zone: str
    x: float
    y: float
    power: int = 0


BEACONS = declare(Beacon, key="zone:{zone}:beacon:{beacon_id}", id="beacon_id", indexes=[
    GridIndex("where", "zone:{zone}:beacons:grid", x="x", y="y", cell=5.0),
    SortedIndex("by_power", "zone:{zone}:beacons:power", score="power"),
])


def test_declarations_of_grid_indices_are_checked() -> None:
    with pytest.raises(SchemaError, match="int or a float"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="zone", y="y")])
    with pytest.raises(SchemaError, match="cell"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="x", y="y", cell=0.0)])
    with pytest.raises(SchemaError, match="unknown fields"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="x", y="nope")])
