"""The asyncio API: the same behaviour as the blocking one, on the same data."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from _support import act, ids

import agentmem
from agentmem.errors import DuplicateId, InvalidInput

ROWS = [  # agent, step, type, target, reward
    ("a1", 1, "move", None, 0.2), ("a1", 2, "attack", "a2", 0.8), ("a1", 3, "move", None, 0.6),
    ("a1", 3, "move", None, 0.1), ("a1", 4, "share", "a2", 0.9), ("a2", 3, "eat", None, None),
]


def batch():
    return [act(a, s, t, action_target_id=tg, reward=rw) for a, s, t, tg, rw in ROWS]


async def test_add_returns_the_stored_copy(amem, r):
    before = int(r.time()[0])
    a = await amem.actions.add(act("a1", 5, embedding=np.ones(3, dtype=np.float32)))
    assert a.action_id == "a1-5-move"
    assert before <= a.stored_at <= int(r.time()[0])
    assert await amem.actions.get("a1-5-move", agent_id="a1") == a
    assert r.zscore("agent:a1:action:timeline", "a1-5-move") == 5.0


async def test_add_many_and_duplicates(amem, r):
    out = await amem.actions.add_many(batch())
    assert ids(out) == ["a1-1-move", "a1-2-attack", "a1-3-move", "a1-3-move.1", "a1-4-share",
                        "a2-3-eat"]
    assert r.llen("simulation:sim01:actions") == 6


async def test_record(amem):
    a = await amem.actions.record(agent_id="a1", simulation_id="s", step_number=1,
                                  action_type="m")
    assert a.action_id == "a1-1-m"


async def test_by_type(amem):
    await amem.actions.add_many(batch())
    assert ids(await amem.actions.by_type("a1", "move")) == ["a1-3-move.1", "a1-3-move",
                                                             "a1-1-move"]
    assert ids(await amem.actions.by_type("a1", "move", limit=1)) == ["a1-3-move.1"]


async def test_high_reward(amem):
    await amem.actions.add_many(batch())
    assert ids(await amem.actions.high_reward("a1", 0.5)) == ["a1-4-share", "a1-2-attack",
                                                               "a1-3-move"]


async def test_relative(amem):
    await amem.actions.add_many(batch())
    assert (await amem.actions.relative("a1", 0)).action_id == "a1-4-share"
    assert (await amem.actions.relative("a1", -1)).action_id == "a1-3-move.1"
    assert await amem.actions.relative("a1", -5) is None
    with pytest.raises(InvalidInput):
        await amem.actions.relative("a1", 1)


async def test_at_step(amem):
    await amem.actions.add_many(batch())
    assert ids(await amem.actions.at_step("sim01", 3)) == ["a1-3-move", "a1-3-move.1",
                                                           "a2-3-eat"]


async def test_type_counts(amem):
    await amem.actions.add_many(batch())
    assert await amem.actions.type_counts("sim01") == {"move": 3, "attack": 1, "share": 1,
                                                       "eat": 1}


async def test_duplicate_id_raises(amem):
    await amem.actions.add(act("a1", 1))
    with pytest.raises(DuplicateId):
        await amem.actions.add(act("a1", 1, "eat", action_id="a1-1-move"))


async def test_concurrent_writes_of_the_same_action_get_distinct_ids(amem, r):
    out = await asyncio.gather(*(amem.actions.add(act("a1", 7)) for _ in range(20)))
    assert sorted(ids(out)) == sorted(["a1-7-move"] + [f"a1-7-move.{i}" for i in range(1, 20)])
    assert r.zcard("agent:a1:action:timeline") == 20


async def test_ping_and_context_manager(server, r):
    async with agentmem.connect_async(server.url) as m:
        assert await m.ping() is True


QUERIES = {
    "by_type": lambda q: q.by_type("a1", "move"),
    "by_target": lambda q: q.by_target("a1", "a2"),
    "high_reward": lambda q: q.high_reward("a1", 0.0, None),
    "successful_interactions": lambda q: q.successful_interactions("a1", "a2"),
    "timeline": lambda q: q.timeline("a1", 2, 4, newest_first=True),
    "recent": lambda q: q.recent("a1", 3),
    "relative": lambda q: q.relative("a1", -2),
    "at_step": lambda q: q.at_step("sim01", 3),
    "simulation_actions": lambda q: q.simulation_actions("sim01"),
    "steps": lambda q: q.steps("sim01"),
    "type_counts": lambda q: q.type_counts("sim01"),
    "get_many": lambda q: q.get_many(["a1-1-move", "x", "a1-3-move.1"], agent_id="a1"),
    "learn": lambda q: q.learn_from_past_actions("a1", "move"),
    "analyze": lambda q: q.analyze_action_sequence("a1", 4),
}


@pytest.mark.parametrize("name", list(QUERIES))
async def test_sync_and_async_results_are_equal(mem, amem, name):
    await amem.actions.add_many(batch())
    query = QUERIES[name]
    sync_result = query(mem.actions)
    async_result = await query(amem.actions)
    assert sync_result == async_result
    assert sync_result not in (None, [], {})


async def test_sync_and_async_writes_store_the_same(mem, amem, r):
    sync_out = mem.actions.add_many(batch())
    sync_keys = {k: r.type(k) for k in r.keys("*")}
    sync_hash = r.hgetall("agent:a1:action:a1-3-move.1")
    r.flushdb()
    async_out = await amem.actions.add_many(batch())
    assert {k: r.type(k) for k in r.keys("*")} == sync_keys
    strip = lambda out: [a.model_copy(update={"stored_at": None}) for a in out]  # noqa: E731
    assert strip(sync_out) == strip(async_out)
    async_hash = r.hgetall("agent:a1:action:a1-3-move.1")
    sync_hash.pop(b"stored_at")
    async_hash.pop(b"stored_at")
    assert sync_hash == async_hash
