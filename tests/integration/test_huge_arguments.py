"""Absurd offsets and huge arguments get a clear ``InvalidInput`` before anything is sent,
or are split so that no single command grows with them (issue 17, item 8); real Redis
and Valkey."""

from __future__ import annotations

import pytest
import redis

import agentmem
from agentmem import Action, InvalidInput
from agentmem.model import jsonvalue


@pytest.fixture
def one(mem: agentmem.Memory) -> Action:
    return mem.actions.add(Action(agent_id="a1", simulation_id="s", step_number=1,
                                  action_type="move"))


@pytest.mark.parametrize(("name", "call"), [
    ("start", lambda m: m.actions.simulation_actions("s", 10**12 + 1)),
    ("stop", lambda m: m.actions.simulation_actions("s", 0, -2**70)),
    ("limit", lambda m: m.actions.recent("a1", 10**30)),
    ("limit", lambda m: m.actions.by_type("a1", "move", limit=2**63)),
    ("relative position", lambda m: m.actions.relative("a1", -10**30)),
])
def test_an_offset_beyond_10_to_the_12_is_invalid_input(
        mem: agentmem.Memory, r: redis.Redis, one: Action, name: str, call: object) -> None:
    r.config_resetstat()
    with pytest.raises(InvalidInput, match=name):
        call(mem)  # type: ignore[operator]
    assert "cmdstat_evalsha" not in r.info("commandstats")  # nothing was sent


def test_the_largest_offsets_are_answered(mem: agentmem.Memory, one: Action) -> None:
    assert mem.actions.simulation_actions("s", 10**12) == []
    assert [a.action_id for a in mem.actions.simulation_actions("s", -10**12)] == [
        one.action_id]
    assert len(mem.actions.recent("a1", 10**12)) == 1
    assert len(mem.actions.by_type("a1", "move", limit=10**12)) == 1
    assert mem.actions.relative("a1", -10**12) is None


def test_get_many_of_many_ids_is_split_into_calls(
        mem: agentmem.Memory, r: redis.Redis, one: Action) -> None:
    ids = [f"a1-{i}-move" for i in range(2, 12_002)] + [str(one.action_id)]
    mem.actions.get_many(["x"], agent_id="a1")  # the script loaded: no NOSCRIPT retries
    r.config_resetstat()
    got = mem.actions.get_many(ids, agent_id="a1")
    assert len(got) == len(ids)
    assert got[-1] == one.model_copy(update={"stored_at": got[-1].stored_at})  # type: ignore[union-attr]
    assert got[:-1] == [None] * (len(ids) - 1)
    stats = r.info("commandstats")
    calls = sum(int(stats[k]["calls"]) for k in ("cmdstat_evalsha", "cmdstat_eval") if k in stats)
    assert calls == 49  # 250 ids a call


@pytest.mark.slow
def test_details_larger_than_a_redis_value_are_invalid_input(mem: agentmem.Memory) -> None:
    big = {"x": "y" * (jsonvalue.MAX_BYTES - 7)}  # {"x":"..."} is 8 bytes more: one too many
    with pytest.raises(InvalidInput, match="more than a Redis value holds"):
        mem.actions.add(Action(agent_id="a1", simulation_id="s", step_number=2,
                               action_type="move", details=big))
    assert mem.actions.at_step("s", 2) == []
