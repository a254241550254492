"""Layout version 2 (hash tags) on one real server, and the server's recorded version.

The same scenario runs on layout 1 and on layout 2 (the database flushed between):
every result must be equal, and every key of the layout-2 run must be the
layout-1 key with the agent or simulation id in braces, of the same type, holding
the same content. Then the version key: a version the client does not know, or a
version other than the client's, stops it before it writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import redis
from _support import act

import agentmem
from agentmem import LayoutError
from agentmem.backends.sql import open_archive
from agentmem.integrity import check, repair
from agentmem.plans import keyspace
from agentmem.tiers.maintenance import TierPolicy, Tiers

LAYOUT_KEY = keyspace.LAYOUT_KEY


def to_v2(key: str) -> str:
    head, first, rest = key.split(":", 2)
    return f"{head}:{{{first}}}:{rest}"


def content(r: redis.Redis) -> dict[str, Any]:
    """Every agentmem key of the database: type and content (``stored_at`` dropped)."""
    out: dict[str, Any] = {}
    for raw in r.scan_iter(count=1000):
        key = raw.decode()
        if key.startswith("agentmem:"):
            continue
        t = r.type(raw).decode()
        if t == "hash":
            value: Any = {k: v for k, v in r.hgetall(raw).items() if k != b"stored_at"}
        elif t == "zset":
            value = r.zrange(raw, 0, -1, withscores=True)
        elif t == "set":
            value = sorted(r.smembers(raw))
        else:
            value = r.lrange(raw, 0, -1)
        out[key] = (t, value, r.ttl(raw) > 0)
    return out


def scenario(mem: agentmem.Memory, tmp: Path) -> dict[str, Any]:
    """Writes, every query, history, tier transitions, pins, check and repair."""
    a = mem.actions
    out: dict[str, Any] = {}
    out["record"] = a.record(agent_id="a1", simulation_id="s1", step_number=1,
                             action_type="move", reward=0.2, position=(1.0, 2.0),
                             details={"d": [1, 2]})
    out["add"] = a.add(act("a1", 1, "move", sim="s1", reward=0.9, action_target_id="a2"))
    out["add_many"] = a.add_many(
        [act("a1", s, "eat" if s % 2 else "share", sim="s1", reward=s / 10,
             action_target_id="a2" if s % 3 == 0 else None, position=(s / 2, -s))
         for s in range(2, 12)]
        + [act("a2", s, "move", sim="s1", reward=0.5) for s in range(1, 6)]
        + [act("b1", 3, "move", sim="s2")])
    out["by_type"] = a.by_type("a1", "eat", limit=3)
    out["by_target"] = a.by_target("a1", "a2")
    out["high_reward"] = a.high_reward("a1", 0.5, limit=4)
    out["successful"] = a.successful_interactions("a1", "a2")
    out["timeline"] = a.timeline("a1", 2, 8, newest_first=True, limit=5)
    out["recent"] = a.recent("a1", 4)
    out["relative"] = [a.relative("a1", p) for p in (0, -1, -5, -30)]
    out["get"] = a.get("a1-1-move.1", agent_id="a1")
    out["at_step"] = a.at_step("s1", 3)
    out["simulation_actions"] = a.simulation_actions("s1", 2, 9)
    out["steps"] = a.steps("s1")
    out["type_counts"] = a.type_counts("s1")
    out["learn"] = a.learn_from_past_actions("a1", "eat", limit=3)
    out["sequence"] = a.analyze_action_sequence("a1", 4)
    out["near"] = a.near("a1", 3.0, -5.0, 4.0, limit=3)
    out["near_at"] = a.near_at("s1", 3.0, -5.0, 40.0, start=2, end=9)
    mem.im_actions.add(agentmem.IMAction(
        action_id="b1-1-move", agent_id="b1", simulation_id="s2", step_number=1,
        action_type="move", reward=0.1, importance=0.4))
    with open_archive(tmp / f"archive{len(list(tmp.iterdir()))}.db") as archive:
        tiers = Tiers(mem, TierPolicy(stm_steps=4, im_capacity=3), archive=archive)
        tiers.pin("a1", "a1-2-share")
        out["agents"] = tiers.agents()
        out["transition"] = tiers.transition("a1", ["a1-3-eat", "a1-4-share"])
        report = tiers.maintain(now_step=11)
        out["maintain"] = report
        out["pinned"] = tiers.pinned("a1")
        out["history"] = a.history("a1")
        out["history_window"] = a.history("a1", 2, 9, newest_first=True, limit=4)
    out["check_clean"] = str(check(mem))
    return out


@pytest.fixture
def both(server: Any, r: redis.Redis, tmp_path: Path
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    results, contents = [], []
    for version in (1, 2):
        r.flushdb()
        with agentmem.connect(server.url, layout_version=version) as mem:
            results.append(scenario(mem, tmp_path))
        assert r.get(LAYOUT_KEY) == (b"2" if version == 2 else None)
        contents.append(content(r))
    return results[0], results[1], contents[0], contents[1]


def _no_time(value: Any) -> Any:
    """``value`` with every write time cleared (the two runs may straddle a second)."""
    if isinstance(value, agentmem.Action):
        return value.model_copy(update={"stored_at": None})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a Lesson
        return {f.name: _no_time(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_no_time(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_time(v) for k, v in value.items()}
    return value


def test_every_operation_gives_the_same_results_on_layout_2(both) -> None:
    res1, res2, _, _ = both
    assert res1.keys() == res2.keys()
    for name in res1:
        assert _no_time(res2[name]) == _no_time(res1[name]), name
    assert res2["history"]
    assert res2["transition"] == ["a1-3-eat", "a1-4-share"]


def test_layout_2_keys_are_the_layout_1_keys_with_hash_tags(both) -> None:
    _, _, c1, c2 = both
    assert {to_v2(k): v for k, v in c1.items()} == c2
    lay = keyspace.layout(2)
    families = {lay.parse(k)[0] for k in c2}  # type: ignore[index]
    assert families == set(lay.patterns)
    for key in c2:
        tag = key[key.index("{") + 1:key.index("}")]
        assert key.split(":")[0] in ("agent", "simulation")
        assert tag


@pytest.mark.parametrize("version", [2, 3])
def test_integrity_repair_on_the_hash_tag_layouts(server: Any, r: redis.Redis,
                                                  version: int) -> None:
    """Layout 2, and layout 3 (its keys, short hash fields)."""
    with agentmem.connect(server.url, layout_version=version) as mem:
        mem.actions.add_many([act("a1", s, "move", sim="s1", reward=0.5) for s in range(5)])
        r.delete("agent:{a1}:action:a1-2-move")          # orphans in every index
        r.zrem("agent:{a1}:action:timeline", "a1-3-move")  # a missing entry
        r.hset("simulation:{s1}:actions:by_type", "move", 9)  # a wrong counter
        found = check(mem)
        assert found.orphans.get("timeline") == 1
        assert found.orphans.get("sim_actions") == 1
        assert found.missing == {"timeline": 1}
        assert found.counters == {"sim_by_type": 1}
        fixed = repair(mem)
        assert fixed.total == found.total
        assert check(mem).clean
        assert mem.actions.type_counts("s1") == {"move": 4}
        assert [x.step_number for x in mem.actions.timeline("a1")] == [0, 1, 3, 4]


# -- the version the server records ------------------------------------------------

def test_first_use_records_the_version(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url) as mem:
        mem.actions.add(act())
    assert r.get(LAYOUT_KEY) is None  # layout 1 leaves the specification's key space alone
    r.flushdb()
    with agentmem.connect(server.url, layout_version=2) as mem:
        assert mem.actions.recent("a1") == []  # an empty server: layout 2 claims it
    assert r.get(LAYOUT_KEY) == b"2"


@pytest.mark.parametrize("client_version", [1, 2])
def test_an_unknown_recorded_version_stops_writers_and_readers(
        server: Any, r: redis.Redis, client_version: int) -> None:
    r.set(LAYOUT_KEY, "9")
    with agentmem.connect(server.url, layout_version=client_version) as mem:
        with pytest.raises(LayoutError, match="version '9'"):
            mem.actions.add(act())
        with pytest.raises(LayoutError):
            mem.actions.add_many([act(step=s) for s in range(3)])
        with pytest.raises(LayoutError):
            mem.actions.recent("a1")
    assert r.keys("*") == [LAYOUT_KEY.encode()]
    assert r.get(LAYOUT_KEY) == b"9"


def test_layout_1_data_and_a_layout_2_client(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url) as mem:  # an agentmem of layout 1 wrote data
        mem.actions.add(act())
    before = content(r)
    with agentmem.connect(server.url, layout_version=2) as mem2, \
            pytest.raises(LayoutError, match="taken to be layout 1"):
        mem2.actions.add(act(step=2))
    assert content(r) == before


def test_unversioned_data_is_layout_1(server: Any, r: redis.Redis) -> None:
    """Data written by the specification's code (no version key) is taken as layout 1."""
    r.hset("agent:a1:action:a1-1-move", mapping={
        "action_id": "a1-1-move", "agent_id": "a1", "simulation_id": "s1",
        "step_number": 1, "action_type": "move"})
    r.zadd("agent:a1:action:timeline", {"a1-1-move": 1})
    with agentmem.connect(server.url, layout_version=2) as mem2, \
            pytest.raises(LayoutError, match="no layout version"):
        mem2.actions.add(act(step=2))
    assert r.get(LAYOUT_KEY) is None
    assert r.dbsize() == 2
    with agentmem.connect(server.url) as mem:
        assert [x.action_id for x in mem.actions.timeline("a1")] == ["a1-1-move"]
    assert r.get(LAYOUT_KEY) is None


def test_a_migration_in_progress_stops_clients(server: Any, r: redis.Redis) -> None:
    r.set(LAYOUT_KEY, "1>2")
    for version in (1, 2):
        with agentmem.connect(server.url, layout_version=version) as mem, \
                pytest.raises(LayoutError, match="in progress"):
            mem.actions.add(act())
    assert r.dbsize() == 1


def test_the_check_is_done_once_per_store(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url) as mem:
        mem.actions.add(act())
        r.set(LAYOUT_KEY, "9")  # changed behind an open store: not noticed (cached)
        assert mem.actions.get("a1-1-move", agent_id="a1") is not None
    with agentmem.connect(server.url) as mem, pytest.raises(LayoutError):
        mem.actions.get("a1-1-move", agent_id="a1")


def test_async_store_checks_the_version(server: Any, r: redis.Redis) -> None:
    async def run() -> None:
        r.set(LAYOUT_KEY, "2")
        mem = agentmem.connect_async(server.url)
        try:
            with pytest.raises(LayoutError, match="records layout version 2"):
                await mem.actions.add(act())
        finally:
            await mem.close()
        mem2 = agentmem.connect_async(server.url, layout_version=2)
        try:
            stored = await mem2.actions.add(act())
            assert await mem2.actions.get(stored.action_id, agent_id="a1") == stored
        finally:
            await mem2.close()

    asyncio.run(run())
    assert r.exists("agent:{a1}:action:a1-1-move")
    assert not r.exists("agent:a1:action:a1-1-move")
