"""Radius search (issue 7, item 1): the grid cover (pure), then ``near``/``near_at``
against real Redis and Valkey, compared with a brute-force filter over every action;
the index kept with writes, transitions to IM, check and repair."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import agentmem
from agentmem import Action, declare, integrity
from agentmem.errors import ConfigError, InvalidId, InvalidInput, SchemaError
from agentmem.model.schema import GridIndex, SortedIndex
from agentmem.plans.grid import OFFSET, TOP, code, cover, interleave
from agentmem.tiers.maintenance import Tiers

# -- the grid, without a server ------------------------------------------------------


def _deinterleave(z: int) -> tuple[int, int]:
    x = y = 0
    for b in range(26):
        x |= (z >> (2 * b) & 1) << b
        y |= (z >> (2 * b + 1) & 1) << b
    return x, y


@given(st.integers(0, TOP), st.integers(0, TOP))
def test_interleave_is_the_z_order_code(cx: int, cy: int) -> None:
    z = interleave(cx, cy)
    assert 0 <= z < 2**52
    assert _deinterleave(z) == (cx, cy)


@settings(max_examples=300)
@given(st.integers(-20, 20), st.integers(-20, 20), st.integers(0, 9), st.integers(0, 9),
       st.integers(4, 64))
def test_cover_holds_every_cell_of_the_box_within_its_budget(x0: int, y0: int, w: int, h: int,
                                                             budget: int) -> None:
    bx0, by0 = OFFSET + x0, OFFSET + y0
    ranges = cover(bx0, bx0 + w, by0, by0 + h, budget)
    assert len(ranges) <= budget
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))
    for cx in range(bx0, bx0 + w + 1):
        for cy in range(by0, by0 + h + 1):
            z = interleave(cx, cy)
            assert any(lo <= z <= hi for lo, hi in ranges)


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(0, 3), st.integers(0, 3))
def test_a_small_box_is_covered_exactly(x0: int, y0: int, w: int, h: int) -> None:
    bx0, by0 = OFFSET + x0, OFFSET + y0
    cells = {interleave(cx, cy) for cx in range(bx0, bx0 + w + 1)
             for cy in range(by0, by0 + h + 1)}
    covered = {z for lo, hi in cover(bx0, bx0 + w, by0, by0 + h) for z in range(lo, hi + 1)}
    assert covered == cells


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


@pytest.mark.parametrize("cell", [0.5, 1.0, 7.0])
def test_near_is_exactly_the_brute_force_filter(connect: Any, cell: float) -> None:
    mem = connect(grid_cell=cell)
    stored = mem.actions.add_many(_world(1500))
    rnd = random.Random(7)
    for _ in range(40):
        x, y = rnd.uniform(-45, 45), rnd.uniform(-45, 45)
        radius = rnd.choice([0.0, 0.3, 2.0, 6.5, 25.0, 90.0])
        agent = f"a{rnd.randrange(3)}"
        assert _got(mem.actions.near(agent, x, y, radius)) == _brute(
            stored, x, y, radius, agent=agent)
        types = tuple(rnd.sample(TYPES, rnd.randint(1, 2)))
        start = rnd.randrange(0, 400)
        got = mem.actions.near(agent, x, y, radius, action_type=list(types), start=start,
                               end=start + 150, limit=5)
        assert _got(got) == _brute(stored, x, y, radius, agent=agent, types=types,
                                   start=start, end=start + 150, limit=5)
    # a shared position: every action there at distance 0, ordered by id
    at = mem.actions.near("a0", 1.25, -3.5, 0.0)
    assert _got(at) == _brute(stored, 1.25, -3.5, 0.0, agent="a0")
    assert len(at) >= 2
    assert all(r.distance == 0.0 for r in at)
    # the far-away ones, found through the clamped edge cells
    assert _got(mem.actions.near("a1", 1e12, 0.0, 60.0)) == _brute(
        stored, 1e12, 0.0, 60.0, agent="a1")


def test_near_at_a_step_and_over_steps_is_exact(mem: agentmem.Memory) -> None:
    stored = mem.actions.add_many(_world(3000, agents=10))
    rnd = random.Random(3)
    for _ in range(30):
        x, y = rnd.uniform(-40, 40), rnd.uniform(-40, 40)
        radius = rnd.choice([1.0, 8.0, 30.0])
        step = rnd.randrange(300)
        got = mem.actions.near_at("s1", x, y, radius, step=step)
        assert _got(got) == _brute(stored, x, y, radius, start=step, end=step)
        assert all(r.record.step_number == step for r in got)
        lo = rnd.randrange(300)
        got = mem.actions.near_at("s1", x, y, radius, start=lo, end=lo + 20,
                                  action_type="gather", limit=7)
        assert _got(got) == _brute(stored, x, y, radius, start=lo, end=lo + 20,
                                   types=("gather",), limit=7)
    assert _got(mem.actions.near_at("s1", 0.0, 0.0, 20.0)) == _brute(stored, 0.0, 0.0, 20.0)
    assert mem.actions.near_at("s1", 0.0, 0.0, 20.0, step=10_000) == []
    assert mem.actions.near_at("nosuch", 0.0, 0.0, 20.0) == []


def test_the_index_holds_what_was_written(mem: agentmem.Memory, r: redis.Redis) -> None:
    a = mem.actions.add(Action(agent_id="a1", simulation_id="s1", step_number=4,
                               action_type="move", position=(2.5, -0.5)))
    mem.actions.add(Action(agent_id="a1", simulation_id="s1", step_number=5,
                           action_type="move"))  # no position: in no grid
    assert r.zrange("agent:a1:action:grid", 0, -1, withscores=True) == [
        (a.action_id.encode(), float(code(2.5, -0.5, 1.0)))]
    assert r.zrange("simulation:s1:actions:4:grid", 0, -1, withscores=True) == [
        (a.action_id.encode(), float(code(2.5, -0.5, 1.0)))]
    assert not r.exists("simulation:s1:actions:5:grid")


async def test_near_on_asyncio(amem: agentmem.AsyncMemory) -> None:
    stored = await amem.actions.add_many(_world(300))
    got = await amem.actions.near("a2", 3.0, 4.0, 15.0, limit=6)
    assert _got(got) == _brute(stored, 3.0, 4.0, 15.0, agent="a2", limit=6)
    got = await amem.actions.near_at("s1", 3.0, 4.0, 15.0, step=40)
    assert _got(got) == _brute(stored, 3.0, 4.0, 15.0, start=40, end=40)


def test_layout_2_answers_the_same(connect: Any, r: redis.Redis) -> None:
    one = connect()
    stored = one.actions.add_many(_world(600))
    want = [_got(one.actions.near("a1", 5.0, 5.0, 12.0)),
            _got(one.actions.near_at("s1", 5.0, 5.0, 12.0, start=10, end=90))]
    r.flushdb()
    two = connect(layout_version=2)
    again = two.actions.add_many(stored)
    assert [a.model_copy(update={"stored_at": None}) for a in again] == [
        a.model_copy(update={"stored_at": None}) for a in stored]  # write times may differ
    assert [_got(two.actions.near("a1", 5.0, 5.0, 12.0)),
            _got(two.actions.near_at("s1", 5.0, 5.0, 12.0, start=10, end=90))] == want
    assert r.exists("agent:{a1}:action:grid")
    assert r.exists("simulation:{s1}:actions:20:grid")


def test_transition_to_im_leaves_both_grids(mem: agentmem.Memory, r: redis.Redis) -> None:
    stored = mem.actions.add_many(_world(90))
    moving = [a for a in stored if a.agent_id == "a1" and a.position is not None][:10]
    assert Tiers(mem).transition("a1", [str(a.action_id) for a in moving]) == [
        a.action_id for a in moving]
    gone = {a.action_id for a in moving}
    left = [a for a in stored if a.action_id not in gone]
    assert _got(mem.actions.near("a1", 0.0, 0.0, 100.0)) == _brute(
        left, 0.0, 0.0, 100.0, agent="a1")
    assert _got(mem.actions.near_at("s1", 0.0, 0.0, 100.0)) == _brute(left, 0.0, 0.0, 100.0)
    for a in moving:
        assert r.zscore("agent:a1:action:grid", str(a.action_id)) is None
        assert r.zscore(f"simulation:s1:actions:{a.step_number}:grid", str(a.action_id)) is None
    assert integrity.check(mem).clean


def test_check_finds_and_repair_fixes_the_grids(mem: agentmem.Memory, r: redis.Redis) -> None:
    stored = mem.actions.add_many(_world(60))
    assert integrity.check(mem).clean
    placed = [a for a in stored if a.position is not None and a.agent_id == "a0"]
    dead, unindexed, misplaced = placed[0], placed[1], placed[2]
    r.delete(f"agent:a0:action:{dead.action_id}")  # orphans in both grids (and elsewhere)
    r.zrem("agent:a0:action:grid", str(unindexed.action_id))
    r.zrem(f"simulation:s1:actions:{unindexed.step_number}:grid", str(unindexed.action_id))
    r.zadd("agent:a0:action:grid", {str(misplaced.action_id): 12345})
    report = integrity.check(mem)
    assert report.orphans["grid"] == 1
    assert report.orphans["sim_grid"] == 1
    assert report.missing["grid"] == 2
    assert report.missing["sim_grid"] == 1
    integrity.repair(mem)
    assert integrity.check(mem).clean
    live = [a for a in stored if a.action_id != dead.action_id]
    assert _got(mem.actions.near("a0", 0.0, 0.0, 100.0)) == _brute(
        live, 0.0, 0.0, 100.0, agent="a0")
    assert _got(mem.actions.near_at("s1", 0.0, 0.0, 100.0)) == _brute(live, 0.0, 0.0, 100.0)


def test_spec_written_actions_are_indexed_by_repair(mem: agentmem.Memory,
                                                    rtext: redis.Redis) -> None:
    """The specification's store_agent_action writes no grid; repair adds it."""
    rtext.hset("agent:a1:action:a1-3-move", mapping={
        "action_id": "a1-3-move", "agent_id": "a1", "simulation_id": "s1", "step_number": "3",
        "action_type": "move", "position_x": "1.5", "position_y": "2.5"})
    rtext.zadd("agent:a1:action:timeline", {"a1-3-move": 3})
    rtext.sadd("agent:a1:action:types:move", "a1-3-move")
    rtext.rpush("simulation:s1:actions", "a1-3-move")
    rtext.sadd("simulation:s1:actions:3", "a1-3-move")
    rtext.zadd("simulation:s1:actions:steps", {"3": 3})
    rtext.hset("simulation:s1:actions:by_type", "move", 1)
    assert mem.actions.near("a1", 1.5, 2.5, 1.0) == []
    report = integrity.repair(mem)
    assert report.missing == {"grid": 1, "sim_grid": 1}
    assert [r.record.action_id for r in mem.actions.near("a1", 1.5, 2.5, 1.0)] == ["a1-3-move"]
    assert [r.record.action_id for r in mem.actions.near_at("s1", 1.0, 2.0, 1.0, step=3)] == [
        "a1-3-move"]


def test_bad_queries_raise_before_anything_is_sent(mem: agentmem.Memory) -> None:
    for args in [(math.nan, 0.0, 1.0), (0.0, math.inf, 1.0), (0.0, 0.0, -1.0),
                 (True, 0.0, 1.0), ("1", 0.0, 1.0)]:
        with pytest.raises(InvalidInput):
            mem.actions.near("a1", *args)
    with pytest.raises(InvalidInput):
        mem.actions.near("a1", 0.0, 0.0, 1.0, limit=-1)
    with pytest.raises(InvalidInput):
        mem.actions.near("a1", 0.0, 0.0, 1.0, start=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not both"):
        mem.actions.near_at("s1", 0.0, 0.0, 1.0, step=3, start=1)
    with pytest.raises(InvalidId):
        mem.actions.near("a:1", 0.0, 0.0, 1.0)
    with pytest.raises(InvalidId):
        mem.actions.near("a1", 0.0, 0.0, 1.0, action_type="no-dash")
    for cell in (0, -1.0, math.nan, math.inf, True):
        with pytest.raises(ConfigError, match="grid_cell"):
            agentmem.connect("redis://127.0.0.1:1/0", grid_cell=cell)


def _placed() -> Action:
    return Action(agent_id="a0", simulation_id="s1", step_number=900, action_type="move",
                  position=(1.0, 2.0))


def test_a_write_without_positions_records_no_grid_cell(mem: agentmem.Memory,
                                                        r: redis.Redis) -> None:
    mem.actions.add(Action(agent_id="a0", simulation_id="s1", step_number=1,
                           action_type="move"))
    assert r.get("agentmem:grid_cell") is None
    assert mem.actions.near("a0", 0.0, 0.0, 1.0) == []
    assert r.get("agentmem:grid_cell") is None  # a search only reads it


def test_the_server_records_the_grid_cell_and_refuses_another(connect: Any,
                                                             r: redis.Redis) -> None:
    first = connect(grid_cell=0.5)
    stored = first.actions.add_many(_world(40))
    assert r.get("agentmem:grid_cell") == b"0.5"
    keys = sorted(r.keys())
    # a store with another cell is refused on its first call, reads included, and
    # writes nothing
    other = connect(grid_cell=2.0)
    with pytest.raises(agentmem.LayoutError, match=r"grid_cell=0\.5") as err:
        other.actions.add(_placed())
    assert "agentmem:grid_cell" in str(err.value)
    with pytest.raises(agentmem.LayoutError):
        connect(grid_cell=2.0).actions.near("a0", 0.0, 0.0, 5.0)
    assert sorted(r.keys()) == keys
    assert r.get("agentmem:grid_cell") == b"0.5"
    # the same cell, written another way, is the same cell
    same = connect(grid_cell=1 / 2)
    assert _got(same.actions.near("a0", 0.0, 0.0, 30.0)) == _brute(
        stored, 0.0, 0.0, 30.0, agent="a0")


async def test_an_asyncio_store_checks_the_recorded_grid_cell(server: Any,
                                                               r: redis.Redis) -> None:
    r.set("agentmem:grid_cell", "3.0")
    bad = agentmem.connect_async(server.url)
    try:
        with pytest.raises(agentmem.LayoutError, match=r"'3\.0'"):
            await bad.actions.add(_placed())
    finally:
        await bad.close()
    good = agentmem.connect_async(server.url, grid_cell=3.0)
    try:
        await good.actions.add(_placed())
        assert r.zcard("agent:a0:action:grid") == 1
    finally:
        await good.close()


def test_changing_the_grid_cell_of_data_with_repair(connect: Any, r: redis.Redis) -> None:
    """The documented way to change the cell: delete the record, repair with the new cell."""
    old = connect(grid_cell=1.0)
    stored = old.actions.add_many(_world(200))
    r.delete("agentmem:grid_cell")
    new = connect(grid_cell=7.0)
    report = integrity.repair(new)
    assert report.missing["grid"] > 0  # rescored to the new cell
    assert r.get("agentmem:grid_cell") == b"7.0"
    assert integrity.check(new).clean
    for x, y, radius in ((0.0, 0.0, 9.0), (-20.0, 15.0, 30.0), (5.0, 5.0, 0.0)):
        assert _got(new.actions.near("a1", x, y, radius)) == _brute(
            stored, x, y, radius, agent="a1")
        assert _got(new.actions.near_at("s1", x, y, radius)) == _brute(stored, x, y, radius)


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


def test_a_declared_model_gets_radius_search(mem: agentmem.Memory) -> None:
    repo = mem.repository(BEACONS)
    rnd = random.Random(5)
    beacons = [Beacon(beacon_id=f"b{i}", zone="z1", x=rnd.uniform(0, 100),
                      y=rnd.uniform(0, 100), power=i) for i in range(400)]
    repo.add_many(beacons)
    got = repo.near("where", 50.0, 50.0, 12.0, zone="z1")
    want = sorted(((b.x - 50.0) ** 2 + (b.y - 50.0) ** 2, b.beacon_id) for b in beacons
                  if (b.x - 50.0) ** 2 + (b.y - 50.0) ** 2 <= 144.0)
    assert [(n.record.beacon_id, n.distance) for n in got] == [
        (i, math.sqrt(d2)) for d2, i in want]
    assert repo.near("where", 50.0, 50.0, 12.0, limit=2, zone="z1")[1].record == got[1].record
    with pytest.raises(SchemaError, match="not a grid index"):
        repo.near("by_power", 0.0, 0.0, 1.0, zone="z1")


def test_radius_search_reads_renamed_hash_fields(mem: agentmem.Memory, r: redis.Redis) -> None:
    """A declaration that keeps its position under other hash field names (as layout 3
    does for actions): the search reads the hash fields, not the storage names."""
    spec = declare(Beacon, key="zone:{zone}:beacon:{beacon_id}", id="beacon_id", indexes=[
        GridIndex("where", "zone:{zone}:beacons:grid", x="x", y="y", cell=5.0)],
        hash_names={"x": "bx", "y": "by"})
    repo = mem.repository(spec)
    repo.add_many([Beacon(beacon_id=f"b{i}", zone="z1", x=float(i), y=0.0) for i in range(20)])
    assert set(r.hgetall("zone:z1:beacon:b3")) == {b"beacon_id", b"zone", b"bx", b"by",
                                                   b"power"}
    got = repo.near("where", 10.0, 0.0, 2.0, zone="z1")
    assert [(n.record.beacon_id, n.distance) for n in got] == [
        ("b10", 0.0), ("b11", 1.0), ("b9", 1.0), ("b12", 2.0), ("b8", 2.0)]




def test_a_limit_stops_the_search_at_the_nearest_ranges(mem: agentmem.Memory,
                                                        r: redis.Redis) -> None:
    """Ranges are read nearest first; once ``limit`` rows are nearer than the next
    range's bound, the rest is not read: fewer positions looked at, the same answer
    as the full search's first rows."""
    mem.actions.add_many([Action(agent_id="a1", simulation_id="s1", step_number=i,
                                 action_type="move", position=(float(i % 40), float(i // 40)))
                          for i in range(1600)])
    full = mem.actions.near("a1", 20.0, 20.0, 15.0)
    r.config_resetstat()
    first = mem.actions.near("a1", 20.0, 20.0, 15.0, limit=3)
    read_limited = int(r.info("commandstats")["cmdstat_hmget"]["calls"])
    r.config_resetstat()
    mem.actions.near("a1", 20.0, 20.0, 15.0)
    read_full = int(r.info("commandstats")["cmdstat_hmget"]["calls"])
    assert [(n.record.action_id, n.distance) for n in first] == [
        (n.record.action_id, n.distance) for n in full[:3]]
    assert read_limited * 4 < read_full  # here 336 positions read instead of 1,600


def test_a_store_without_grids(server, r):
    """grids=False: no grid entries, near/near_at refused, integrity clean, the choice
    recorded so that a store with grids is refused on that data (and the other way)."""
    import agentmem
    from agentmem import Action, ConfigError, LayoutError, integrity

    r.flushdb()
    plain = agentmem.connect(server.url, grids=False)
    plain.actions.add_many([Action(agent_id="g1", simulation_id="s1", step_number=i,
                                   action_type="move", position=(i, i)) for i in range(30)])
    assert not [k for k in r.scan_iter(count=1000) if k.endswith(b":grid")]
    assert r.get("agentmem:grid_cell") == b"off"
    with pytest.raises(ConfigError, match="grids=False"):
        plain.actions.near("g1", 1.0, 1.0, 2.0)
    with pytest.raises(ConfigError, match="grids=False"):
        plain.actions.near_at("s1", 1.0, 1.0, 2.0, step=1)
    assert integrity.check(plain).clean
    assert [a.position for a in plain.actions.recent("g1", 1)] == [(29.0, 29.0)]
    gridded = agentmem.connect(server.url)
    with pytest.raises(LayoutError, match="no radius-search grids"):
        gridded.actions.add(Action(agent_id="g2", simulation_id="s1", step_number=1,
                                   action_type="move", position=(1, 1)))
    with pytest.raises(LayoutError, match="no radius-search grids"):
        gridded.actions.near("g1", 1.0, 1.0, 2.0)
    r.flushdb()
    gridded.actions.add(Action(agent_id="g2", simulation_id="s1", step_number=1,
                               action_type="move", position=(1, 1)))
    fresh = agentmem.connect(server.url, grids=False)  # a store checks once, at first use
    with pytest.raises(LayoutError, match="grids=False"):
        fresh.actions.add(Action(agent_id="g3", simulation_id="s1", step_number=1,
                                 action_type="move", position=(1, 1)))
    fresh.close()
    plain.close()
    gridded.close()
