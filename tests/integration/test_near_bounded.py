"""Radius search with a limit does work about proportional to the limit (issue 19, item 7):
the code ranges of :func:`agentmem.plans.grid.nearest_cover` (the nearest cells first,
each a range of its own, then coarser blocks) give exactly the brute-force answer (every
stored position, the distance computed here) for random queries, radii, limits and
cells, including dense stores where a cell holds many positions; and a limited query
at a dense store reads few hashes (``HMGET`` counted by the server)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import redis
from pydantic import BaseModel
from test_near import _brute, _got

import agentmem
from agentmem import Action, declare
from agentmem.model.schema import GridIndex

TYPES = ("move", "gather", "attack")


def _world(n: int, cell: float, *, seed: int, side: float = 20.0,
           agents: int = 2) -> list[Action]:
    """Positions in ``[-side/2, side/2]^2``, with shared positions, positions on cell
    corners and edges, far-away (clamped) positions and none."""
    rnd = random.Random(seed)
    half = side / 2
    out = []
    for i in range(n):
        if i % 23 == 0:
            pos = None
        elif i % 19 == 0:
            pos = (rnd.choice([-1e12, 1e12]), rnd.uniform(-half, half))
        elif i % 7 == 0:  # on a cell corner or edge
            pos = (rnd.randint(-4, 4) * cell, rnd.choice([rnd.randint(-4, 4) * cell,
                                                          rnd.uniform(-half, half)]))
        elif i % 11 == 0:  # a shared position: ties ordered by id
            pos = (0.5, -0.25)
        else:
            pos = (rnd.uniform(-half, half), rnd.uniform(-half, half))
        out.append(Action(agent_id=f"a{i % agents}", simulation_id="s1",
                          step_number=i // agents, action_type=TYPES[i % 3], position=pos))
    return out


def _point(rnd: random.Random, cell: float, stored: list[Action], half: float
           ) -> tuple[float, float]:
    kind = rnd.randrange(4)
    if kind == 0:  # a cell corner
        return rnd.randint(-8, 8) * cell, rnd.randint(-8, 8) * cell
    if kind == 1:  # a stored position
        pos = rnd.choice([a.position for a in stored if a.position is not None])
        assert pos is not None
        return pos
    return rnd.uniform(-half, half), rnd.uniform(-half, half)


@pytest.mark.parametrize("cell", [0.05, 0.25, 1.0, 7.0])
def test_limited_near_is_the_brute_force_answer(connect: Any, cell: float) -> None:
    mem = connect(grid_cell=cell)
    stored = mem.actions.add_many(_world(1200, cell, seed=int(cell * 100)))
    rnd = random.Random(int(cell * 1000) + 1)
    for _ in range(60):
        x, y = _point(rnd, cell, stored, 12.0)
        radius = rnd.choice([0.0, cell / 2, cell, 1.5, 4.0, 9.0, 30.0])
        limit = rnd.choice([None, 0, 1, 2, 5, 10, 37, 1000])
        agent = rnd.choice(["a0", "a1"])
        assert _got(mem.actions.near(agent, x, y, radius, limit=limit)) == _brute(
            stored, x, y, radius, agent=agent, limit=limit), (x, y, radius, limit)
        types = tuple(rnd.sample(TYPES, rnd.randint(1, 2)))
        start = rnd.randrange(0, 500)
        got = mem.actions.near(agent, x, y, radius, limit=limit, action_type=list(types),
                               start=start, end=start + 200)
        assert _got(got) == _brute(stored, x, y, radius, agent=agent, types=types,
                                   start=start, end=start + 200, limit=limit)
        got = mem.actions.near_at("s1", x, y, radius, start=start, end=start + 40,
                                  limit=limit)
        assert _got(got) == _brute(stored, x, y, radius, start=start, end=start + 40,
                                   limit=limit)
    # far away: the clamped edge cells
    for limit in (None, 1, 4):
        assert _got(mem.actions.near("a1", 1e12, 0.0, 60.0, limit=limit)) == _brute(
            stored, 1e12, 0.0, 60.0, agent="a1", limit=limit)


def _dense(n: int, *, seed: int, agents: int = 1, steps: int | None = None,
           side: float = 10.0) -> list[Action]:
    """``n`` actions uniform in ``[0, side]^2`` (200 per square unit at the defaults:
    12.5 per 0.25 cell), a few of them sharing positions."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        pos = (5.0, 5.0) if i % 997 == 0 else (rnd.uniform(0, side), rnd.uniform(0, side))
        out.append(Action(agent_id=f"d{i % agents}", simulation_id="s1",
                          step_number=i // agents if steps is None else i % steps,
                          action_type=TYPES[i % 3], position=pos))
    return out


def _calls(r: redis.Redis, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_dense_store_answers_exactly_and_reads_few_hashes(connect: Any,
                                                            r: redis.Redis) -> None:
    """20,000 actions of one agent in 10 x 10, cell 0.25 (12.5 per cell): the circle of
    radius 5 has about 1,300 cells, more than the ranges of one query, where the old
    cover read the coarse range around the point whole (hundreds of hashes)."""
    mem = connect(grid_cell=0.25)
    stored = mem.actions.add_many(_dense(20_000, seed=4))
    rnd = random.Random(9)
    queries = [(5.0, 5.0, 5.0, 10), (5.0, 5.0, 5.0, 1), (5.1, 4.9, 2.0, 30)] + [
        (rnd.uniform(0, 10), rnd.uniform(0, 10), rnd.choice([0.3, 1.0, 5.0, 12.0]),
         rnd.choice([1, 3, 10, 100])) for _ in range(25)]
    for x, y, radius, limit in queries:
        assert _got(mem.actions.near("d0", x, y, radius, limit=limit)) == _brute(
            stored, x, y, radius, limit=limit), (x, y, radius, limit)
    for limit in (1, 10, 100):
        r.config_resetstat()
        got = mem.actions.near("d0", 5.0, 5.0, 5.0, limit=limit)
        assert len(got) == limit
        # about the positions of the cells nearest the point: 4 cells at the corner
        # (5, 5) hold 50 positions; 100 rows need the cells within about 0.4
        assert _calls(r, "hmget") <= 60 + 2 * limit
        assert _calls(r, "hgetall") == limit
    r.config_resetstat()
    assert len(mem.actions.near("d0", 5.0, 5.0, 5.0)) > 15_000  # no limit: the disc
    assert _calls(r, "hmget") > 15_000


def test_a_dense_step_near_at_reads_few_hashes(connect: Any, r: redis.Redis) -> None:
    """8,000 agents at one step in 10 x 10 (cell 0.25): ``near_at`` with a limit reads
    the step grid's nearest cells first, as ``near`` does."""
    mem = connect(grid_cell=0.25)
    stored = mem.actions.add_many(_dense(8_000, seed=5, agents=8_000, steps=1))
    for x, y, radius, limit in ((5.0, 5.0, 5.0, 10), (2.3, 7.7, 3.0, 5), (9.9, 0.1, 6.0, 40)):
        r.config_resetstat()
        got = mem.actions.near_at("s1", x, y, radius, step=0, limit=limit)
        assert _got(got) == _brute(stored, x, y, radius, limit=limit)
        assert _calls(r, "hmget") <= 60 + 2 * limit


class Beacon(BaseModel):
    beacon_id: str
    zone: str
    x: float
    y: float


BEACONS = declare(Beacon, key="zone:{zone}:beacon:{beacon_id}", id="beacon_id", indexes=[
    GridIndex("where", "zone:{zone}:beacons:grid", x="x", y="y", cell=0.25)])


def test_a_declared_model_gets_the_bounded_search(mem: agentmem.Memory,
                                                 r: redis.Redis) -> None:
    repo = mem.repository(BEACONS)
    rnd = random.Random(6)
    beacons = [Beacon(beacon_id=f"b{i}", zone="z1", x=rnd.uniform(0, 10),
                      y=rnd.uniform(0, 10)) for i in range(10_000)]
    repo.add_many(beacons)

    def brute(x: float, y: float, radius: float, limit: int | None
              ) -> list[tuple[str, float]]:
        rows = sorted(((b.x - x) * (b.x - x) + (b.y - y) * (b.y - y), b.beacon_id)
                      for b in beacons)
        rows = [row for row in rows if row[0] <= radius * radius]
        return [(i, math.sqrt(d2)) for d2, i in rows[:limit]]

    for _ in range(20):
        x, y = rnd.uniform(-1, 11), rnd.uniform(-1, 11)
        radius, limit = rnd.choice([0.5, 2.0, 5.0, 20.0]), rnd.choice([None, 1, 10, 50])
        got = repo.near("where", x, y, radius, limit=limit, zone="z1")
        assert [(n.record.beacon_id, n.distance) for n in got] == brute(x, y, radius, limit)
    r.config_resetstat()
    assert len(repo.near("where", 5.0, 5.0, 5.0, limit=10, zone="z1")) == 10
    assert _calls(r, "hmget") <= 80


def _steps_of_mixed_density(cell: float) -> list[Action]:
    """40 steps of 1 to 300 actions (of as many agents) in 10 x 10: some step grids
    are read whole (few members), others range by range, in the same search."""
    rnd = random.Random(int(cell * 100) + 7)
    out = []
    for s in range(40):
        n = (1, 2, 5, 40, 300)[s % 5]
        for a in range(n):
            pos = (round(rnd.uniform(0, 10) / cell) * cell if a % 9 == 0 else rnd.uniform(0, 10),
                   rnd.uniform(0, 10))
            out.append(Action(agent_id=f"g{a}", simulation_id="s1", step_number=s,
                              action_type=TYPES[(a + s) % 3], position=pos))
    return out


@pytest.mark.parametrize("cell", [0.25, 1.0])
def test_near_at_over_steps_of_mixed_density_is_exact(connect: Any, r: redis.Redis,
                                                      cell: float) -> None:
    mem = connect(grid_cell=cell)
    stored = mem.actions.add_many(_steps_of_mixed_density(cell))
    rnd = random.Random(11)
    for _ in range(40):
        x, y = rnd.uniform(-1, 11), rnd.uniform(-1, 11)
        radius = rnd.choice([0.0, 0.5, 2.0, 5.0, 30.0])
        limit = rnd.choice([None, 0, 1, 3, 10, 100])
        lo = rnd.randrange(40)
        hi = lo + rnd.randrange(12)
        got = mem.actions.near_at("s1", x, y, radius, start=lo, end=hi, limit=limit)
        assert _got(got) == _brute(stored, x, y, radius, start=lo, end=hi, limit=limit)
        got = mem.actions.near_at("s1", x, y, radius, step=lo, limit=limit,
                                  action_type=["move", "gather"])
        assert _got(got) == _brute(stored, x, y, radius, start=lo, end=lo, limit=limit,
                                   types=("move", "gather"))
    # a step of one action is read whole: one ZRANGE, not one per range
    r.config_resetstat()
    got = mem.actions.near_at("s1", 5.0, 5.0, 100.0, step=0, limit=10)
    assert len(got) == 1
    assert _calls(r, "zrange") == 1
    # a step of 300: a first ZRANGE finds more members than ranges, then range by range
    r.config_resetstat()
    got = mem.actions.near_at("s1", 5.0, 5.0, 100.0, step=4, limit=10)
    assert len(got) == 10
    assert 1 < _calls(r, "zrange") <= 49
    # limit 0 reads no grid (only the list of steps)
    r.config_resetstat()
    assert mem.actions.near_at("s1", 5.0, 5.0, 100.0, start=0, end=39, limit=0) == []
    assert _calls(r, "zrange") == 1
    assert _calls(r, "hmget") == 0
