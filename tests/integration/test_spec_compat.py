"""The specification's own code and agentmem read each other's data.

The document's functions (sections 3.5, 4.1, 4.2, 4.3, 5.1) are written out
verbatim in ``benchmarks/spec_reference.py``, shared with the benchmark. They
run on a ``decode_responses=True`` client, as the document's code expects.
"""

from __future__ import annotations

import json

import pytest
from _support import act

from benchmarks.spec_reference import (  # the document's code, verbatim
    convert_hash_to_action,
    get_action_by_relative_position,
    get_agent_actions_by_type,
    get_agent_high_reward_actions,
    store_agent_action,
)

SPEC_FIELDS = ("action_id", "simulation_id", "step_number", "agent_id", "action_type",
               "action_target_id", "state_before_id", "state_after_id", "resources_before",
               "resources_after", "reward", "details")


def as_spec(a) -> dict:
    """What convert_hash_to_action should return for an agentmem Action."""
    out = {f: getattr(a, f) for f in SPEC_FIELDS}
    if a.position is not None:
        out["position"] = a.position
    return out


def by_id(actions: list[dict]) -> dict[str, dict]:
    return {a["action_id"]: a for a in actions}


ROWS = [  # step, type, target, reward, position, details, resources
    (1, "move", None, 0.1, (0.0, 0.0), {"dir": "n"}, (5.0, 4.5)),
    (2, "gather", "r1", 0.6, (1.0, 1.5), None, (4.5, 6.0)),
    (3, "attack", "a2", -0.5, None, {"hits": [1, 2], "ok": True}, None),
    (4, "move", None, 0.75, (0.1, -0.25), "just text", (6.0, 5.5)),
    (5, "share", "a2", 0.9, None, None, None),
    (6, "move", None, None, (2.5, 2.5), {"nested": {"x": [1.5, None]}}, (1.0, None)),
]


def agentmem_rows():
    return [act("a1", s, t, action_target_id=tg, reward=rw, position=pos, details=d,
                resources_before=res[0] if res else None,
                resources_after=res[1] if res else None,
                state_before_id=f"sb{s}", state_after_id=f"sa{s}")
            for s, t, tg, rw, pos, d, res in ROWS]


@pytest.fixture
def written_by_agentmem(mem):
    return mem.actions.add_many(agentmem_rows())


@pytest.fixture
def written_by_spec(rtext):
    for s, t, tg, rw, pos, d, res in ROWS:
        store_agent_action(rtext, "a1", "sim01", s, t, action_target_id=tg,
                           state_before_id=f"sb{s}", state_after_id=f"sa{s}",
                           resources_before=res[0] if res else None,
                           resources_after=res[1] if res else None,
                           reward=rw, details=d, position=pos)
    store_agent_action(rtext, "a2", "sim01", 5, "move", reward=0.3, position=(9.0, 9.0))


# -- (a) the specification's readers on data agentmem wrote -----------------------------

def test_spec_convert_reads_every_agentmem_hash(written_by_agentmem, rtext):
    for a in written_by_agentmem:
        h = rtext.hgetall(f"agent:a1:action:{a.action_id}")
        assert convert_hash_to_action(h) == as_spec(a)


def test_spec_by_type_reads_agentmem_data(mem, written_by_agentmem, rtext):
    spec = get_agent_actions_by_type(rtext, "a1", "move")
    ours = mem.actions.by_type("a1", "move")
    assert by_id(spec) == {a.action_id: as_spec(a) for a in ours}


def test_spec_by_type_with_limit_agrees_with_agentmem_order(mem, written_by_agentmem, rtext):
    spec = get_agent_actions_by_type(rtext, "a1", "move", limit=2)
    ours = mem.actions.by_type("a1", "move", limit=2)
    assert spec == [as_spec(a) for a in ours]


def test_spec_high_reward_reads_agentmem_data_as_a_set(mem, written_by_agentmem, rtext):
    spec = get_agent_high_reward_actions(rtext, "a1", min_reward=0.5)
    ours = mem.actions.high_reward("a1", min_reward=0.5)
    assert by_id(spec) == {a.action_id: as_spec(a) for a in ours}
    assert [a["reward"] for a in spec] == sorted(a.reward for a in ours)  # spec: lowest first


def test_spec_relative_newest_agrees(mem, written_by_agentmem, rtext):
    assert get_action_by_relative_position(rtext, "a1", 0) == as_spec(
        mem.actions.relative("a1", 0))


def test_spec_relative_reads_the_same_index(mem, written_by_agentmem, rtext):
    """The spec maps -1 to the *oldest* indexed entry (NOTES defect 1); agentmem maps it to
    the one before the newest. Both read the same relative index."""
    n = len(ROWS)
    assert get_action_by_relative_position(rtext, "a1", -1) == as_spec(
        mem.actions.relative("a1", -(n - 1)))
    assert mem.actions.relative("a1", -1).step_number == n - 1


def test_spec_reads_agentmem_relative_index_trimmed_to_20(mem, rtext):
    mem.actions.add_many([act("a1", s) for s in range(30)])
    assert rtext.zcard("agent:a1:action:relative_index") == 20
    assert get_action_by_relative_position(rtext, "a1", -1)["step_number"] == 10


def test_spec_reads_duplicate_suffixed_ids(mem, rtext):
    out = mem.actions.add_many([act("a1", 1, reward=0.6), act("a1", 1, reward=0.7)])
    spec = get_agent_actions_by_type(rtext, "a1", "move")
    assert by_id(spec) == {a.action_id: as_spec(a) for a in out}


# -- (b) agentmem on data the specification's code wrote ----------------------------------

def test_agentmem_get_reads_spec_hashes(mem, written_by_spec, rtext):
    for s, t, *_ in ROWS:
        aid = f"a1-{s}-{t}"
        ours = mem.actions.get(aid, agent_id="a1")
        assert as_spec(ours) == convert_hash_to_action(rtext.hgetall(f"agent:a1:action:{aid}"))
        assert ours.stored_at == int(rtext.hget(f"agent:a1:action:{aid}", "stored_at"))


def test_agentmem_by_type_reads_spec_data(mem, written_by_spec, rtext):
    ours = mem.actions.by_type("a1", "move")
    assert [a.step_number for a in ours] == [6, 4, 1]
    assert {a.action_id: as_spec(a) for a in ours} == by_id(
        get_agent_actions_by_type(rtext, "a1", "move"))


def test_agentmem_high_reward_reads_spec_data(mem, written_by_spec, rtext):
    ours = mem.actions.high_reward("a1", min_reward=0.5)
    assert [a.reward for a in ours] == [0.9, 0.75, 0.6]
    assert {a.action_id: as_spec(a) for a in ours} == by_id(
        get_agent_high_reward_actions(rtext, "a1", min_reward=0.5))


def test_agentmem_relative_reads_spec_data(mem, written_by_spec, rtext):
    assert as_spec(mem.actions.relative("a1", 0)) == get_action_by_relative_position(
        rtext, "a1", 0)
    assert mem.actions.relative("a1", -1).action_id == "a1-5-share"


def test_agentmem_queries_read_spec_indexes(mem, written_by_spec):
    assert [a.step_number for a in mem.actions.timeline("a1", 2, 4)] == [2, 3, 4]
    assert [a.action_id for a in mem.actions.by_target("a1", "a2")] == [
        "a1-5-share", "a1-3-attack"]
    assert [a.action_id for a in mem.actions.successful_interactions("a1", "a2")] == [
        "a1-5-share"]
    assert [a.action_id for a in mem.actions.at_step("sim01", 5)] == [
        "a1-5-share", "a2-5-move"]
    assert len(mem.actions.simulation_actions("sim01")) == len(ROWS) + 1
    assert mem.actions.steps("sim01") == [1, 2, 3, 4, 5, 6]
    assert mem.actions.type_counts("sim01") == {"move": 4, "gather": 1, "attack": 1,
                                                "share": 1}


def test_agentmem_writes_after_spec_writes_without_collision(mem, written_by_spec, rtext):
    a = mem.actions.add(act("a1", 6, "move"))
    assert a.action_id == "a1-6-move.1"
    assert rtext.hget("agent:a1:action:a1-6-move", "details") == json.dumps(
        {"nested": {"x": [1.5, None]}})
    assert rtext.zcard("agent:a1:action:timeline") == len(ROWS) + 1
    assert rtext.hget("simulation:sim01:actions:by_type", "move") == "5"


def test_agentmem_reads_spec_data_it_would_not_write(mem, rtext):
    """The spec's code accepts any type; agentmem refuses '-' and > 20 characters on write
    but must still read such actions."""
    store_agent_action(rtext, "a1", "sim01", 1, "move-north", reward=0.5)
    store_agent_action(rtext, "a1", "sim01", 2, "t" * 25)
    assert mem.actions.get("a1-1-move-north", agent_id="a1").action_type == "move-north"
    assert [a.action_id for a in mem.actions.timeline("a1")] == [
        "a1-1-move-north", "a1-2-" + "t" * 25]
    assert [a.action_id for a in mem.actions.at_step("sim01", 1)] == ["a1-1-move-north"]
    assert [a.action_id for a in mem.actions.high_reward("a1")] == ["a1-1-move-north"]
