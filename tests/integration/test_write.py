"""Writes: exactly the specification's keys, types and contents; ids; refusals; scripts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import act, actions, expire_now, ids
from hypothesis import HealthCheck, given, settings

import agentmem
from agentmem import Action, IMAction
from agentmem.errors import (
    ConfigError,
    DuplicateId,
    InvalidInput,
    Unavailable,
    WriteError,
)
from agentmem.servers.local import LocalServer, find_binary


def keys(r) -> set[str]:
    return {k.decode() for k in r.keys("*")}


def zmembers(r, key) -> list[tuple[str, float]]:
    return [(m.decode(), s) for m, s in r.zrange(key, 0, -1, withscores=True)]


def full_action(**over) -> Action:
    fields = {"agent_id": "a1", "simulation_id": "sim01", "step_number": 5,
              "action_type": "move", "action_target_id": "t9", "state_before_id": "s-before",
              "state_after_id": "s-after", "resources_before": 10.0, "resources_after": 7.5,
              "reward": -1.25, "details": {"dir": "north", "speed": 2}, "position": (1.5, -2.0),
              "embedding": np.array([0.5, -1.0, 3.0], dtype=np.float32),
              "module_type": "dqn", "module_id": "m1"}
    fields.update(over)
    return Action(**fields)


# -- one write ---------------------------------------------------------------------

def test_single_write_creates_exactly_the_spec_keys(mem, r):
    mem.actions.add(full_action())
    assert keys(r) == {
        "agent:a1:action:a1-5-move",
        "agent:a1:action:timeline",
        "agent:a1:action:relative_index",
        "agent:a1:action:types:move",
        "agent:a1:action:targets:t9",
        "agent:a1:action:rewards",
        "simulation:sim01:actions",
        "simulation:sim01:actions:5",
        "simulation:sim01:actions:steps",
        "simulation:sim01:actions:by_type",
        # agentmem's radius-search grids (the action has a position), and the grid
        # cell they use, recorded by a store's first write of a position
        "agent:a1:action:grid",
        "simulation:sim01:actions:5:grid",
        "agentmem:grid_cell",
    }
    assert r.get("agentmem:grid_cell") == b"1.0"


def test_single_write_key_types(mem, r):
    mem.actions.add(full_action())
    expected = {
        "agent:a1:action:a1-5-move": b"hash",
        "agent:a1:action:timeline": b"zset",
        "agent:a1:action:relative_index": b"zset",
        "agent:a1:action:types:move": b"set",
        "agent:a1:action:targets:t9": b"set",
        "agent:a1:action:rewards": b"zset",
        "simulation:sim01:actions": b"list",
        "simulation:sim01:actions:5": b"set",
        "simulation:sim01:actions:steps": b"zset",
        "simulation:sim01:actions:by_type": b"hash",
        "agent:a1:action:grid": b"zset",
        "simulation:sim01:actions:5:grid": b"zset",
    }
    assert {k: r.type(k) for k in expected} == expected


def test_single_write_hash_fields(mem, r):
    stored = mem.actions.add(full_action())
    h = r.hgetall("agent:a1:action:a1-5-move")
    floats = {k: float(h.pop(k)) for k in (b"resources_before", b"resources_after", b"reward",
                                          b"position_x", b"position_y")}
    assert floats == {b"resources_before": 10.0, b"resources_after": 7.5, b"reward": -1.25,
                      b"position_x": 1.5, b"position_y": -2.0}
    assert json.loads(h.pop(b"details")) == {"dir": "north", "speed": 2}
    assert h == {
        b"action_id": b"a1-5-move", b"simulation_id": b"sim01", b"step_number": b"5",
        b"agent_id": b"a1", b"action_type": b"move", b"action_target_id": b"t9",
        b"state_before_id": b"s-before", b"state_after_id": b"s-after",
        b"embedding": np.array([0.5, -1.0, 3.0], dtype="<f4").tobytes(),
        b"module_type": b"dqn", b"module_id": b"m1",
        b"stored_at": str(stored.stored_at).encode(),
    }


def test_minimal_write_stores_only_present_fields_and_skips_optional_indexes(mem, r):
    mem.actions.add(act("a1", 3, "rest"))
    assert set(r.hgetall("agent:a1:action:a1-3-rest")) == {
        b"action_id", b"simulation_id", b"step_number", b"agent_id", b"action_type",
        b"stored_at"}
    assert not r.exists("agent:a1:action:rewards")
    assert not r.keys("agent:a1:action:targets:*")


def test_single_write_index_contents(mem, r):
    mem.actions.add(full_action())
    assert zmembers(r, "agent:a1:action:timeline") == [("a1-5-move", 5.0)]
    assert zmembers(r, "agent:a1:action:relative_index") == [("a1-5-move", 5.0)]
    assert r.smembers("agent:a1:action:types:move") == {b"a1-5-move"}
    assert r.smembers("agent:a1:action:targets:t9") == {b"a1-5-move"}
    assert zmembers(r, "agent:a1:action:rewards") == [("a1-5-move", -1.25)]
    assert r.lrange("simulation:sim01:actions", 0, -1) == [b"a1-5-move"]
    assert r.smembers("simulation:sim01:actions:5") == {b"a1-5-move"}
    assert zmembers(r, "simulation:sim01:actions:steps") == [("5", 5.0)]
    assert r.hgetall("simulation:sim01:actions:by_type") == {b"move": b"1"}


def test_add_returns_the_stored_copy(mem, r):
    before = int(r.time()[0])
    given = full_action()
    stored = mem.actions.add(given)
    after = int(r.time()[0])
    assert given.action_id is None  # the input is untouched
    assert given.stored_at is None
    assert stored.action_id == "a1-5-move"
    assert before <= stored.stored_at <= after
    assert stored.model_copy(update={"action_id": None, "stored_at": None}) == given
    assert mem.actions.get("a1-5-move", agent_id="a1") == stored


def test_reward_score_is_the_raw_reward(mem, r):
    mem.actions.add_many([act("a1", 1, reward=-7.5), act("a1", 2, reward=123.25),
                          act("a1", 3, reward=0.0)])
    assert zmembers(r, "agent:a1:action:rewards") == [
        ("a1-1-move", -7.5), ("a1-3-move", 0.0), ("a1-2-move", 123.25)]


def test_timeline_score_is_the_step(mem, r):
    mem.actions.add_many([act("a1", s) for s in (7, 0, 1000000)])
    assert zmembers(r, "agent:a1:action:timeline") == [
        ("a1-0-move", 0.0), ("a1-7-move", 7.0), ("a1-1000000-move", 1000000.0)]


def test_steps_zset_member_equals_score(mem, r):
    mem.actions.add_many([act("a1", s) for s in (3, 1, 3, 2)] + [act("a2", 1)])
    assert zmembers(r, "simulation:sim01:actions:steps") == [
        ("1", 1.0), ("2", 2.0), ("3", 3.0)]


def test_simulation_list_keeps_write_order(mem, r):
    mem.actions.add(act("a2", 9))
    mem.actions.add_many([act("a1", 5), act("a3", 1), act("a1", 2)])
    mem.actions.add(act("a1", 1, "eat"))
    assert r.lrange("simulation:sim01:actions", 0, -1) == [
        b"a2-9-move", b"a1-5-move", b"a3-1-move", b"a1-2-move", b"a1-1-eat"]


def test_step_set_holds_every_action_of_the_step(mem, r):
    mem.actions.add_many([act("a1", 4), act("a2", 4, "eat"), act("a3", 5),
                          act("a4", 4, sim="other")])
    assert r.smembers("simulation:sim01:actions:4") == {b"a1-4-move", b"a2-4-eat"}
    assert r.smembers("simulation:sim01:actions:5") == {b"a3-5-move"}
    assert r.smembers("simulation:other:actions:4") == {b"a4-4-move"}


def test_type_counts_hash_counts_per_type(mem, r):
    mem.actions.add_many([act("a1", 1), act("a1", 2), act("a2", 1, "eat"),
                          act("a1", 3, "attack", sim="sim02")])
    mem.actions.add(act("a3", 1))
    assert r.hgetall("simulation:sim01:actions:by_type") == {b"move": b"3", b"eat": b"1"}
    assert r.hgetall("simulation:sim02:actions:by_type") == {b"attack": b"1"}


def test_relative_index_is_trimmed_to_20_by_default(mem, r):
    mem.actions.add_many([act("a1", s) for s in range(25)])
    assert [m for m, _ in zmembers(r, "agent:a1:action:relative_index")] == [
        f"a1-{s}-move" for s in range(5, 25)]
    assert r.zcard("agent:a1:action:timeline") == 25


def test_relative_index_is_trimmed_across_separate_writes(mem, r):
    for s in range(23):
        mem.actions.add(act("a1", s))
    assert [m for m, _ in zmembers(r, "agent:a1:action:relative_index")] == [
        f"a1-{s}-move" for s in range(3, 23)]


@pytest.mark.parametrize("size", [1, 3, 7])
def test_relative_index_size_option(connect, r, size):
    m = connect(relative_index_size=size)
    m.actions.add_many([act("a1", s) for s in range(6)])
    m.actions.add_many([act("a1", s) for s in range(6, 10)])
    assert [m for m, _ in zmembers(r, "agent:a1:action:relative_index")] == [
        f"a1-{s}-move" for s in range(max(0, 10 - size), 10)]


def test_relative_index_keeps_the_newest_steps_when_written_out_of_order(connect, r):
    m = connect(relative_index_size=3)
    m.actions.add_many([act("a1", s) for s in (9, 2, 7, 1, 8)])
    m.actions.add(act("a1", 0))
    assert [x for x, _ in zmembers(r, "agent:a1:action:relative_index")] == [
        "a1-7-move", "a1-8-move", "a1-9-move"]


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_bad_relative_index_size_is_refused(server, size):
    with pytest.raises(ConfigError):
        agentmem.connect(server.url, relative_index_size=size)


def test_ttl_is_on_the_hash_only(connect, r):
    m = connect(ttl=100)
    m.actions.add(full_action())
    ttl = r.ttl("agent:a1:action:a1-5-move")
    assert 0 < ttl <= 100
    for key in keys(r) - {"agent:a1:action:a1-5-move"}:
        assert r.ttl(key) == -1, key


def test_default_ttl_is_one_day(mem, r):
    mem.actions.add(act())
    assert 0 < r.ttl("agent:a1:action:a1-1-move") <= 24 * 3600


def test_stored_at_is_server_time(mem, r):
    before = int(r.time()[0])
    out = mem.actions.add_many([act("a1", s) for s in range(3)])
    after = int(r.time()[0])
    for a in out:
        assert before <= a.stored_at <= after
        assert int(r.hget(f"agent:a1:action:{a.action_id}", "stored_at")) == a.stored_at


def test_stored_values_round_trip_through_the_server(mem):
    a = full_action(reward=5e-324, resources_before=1e308, resources_after=-0.0,
                    position=(-1e308, 2.2250738585072014e-308),
                    details={"big": 2**100, "u": "日本 😀", "f": 0.1, "t": (1, 2)})
    stored = mem.actions.add(a)
    back = mem.actions.get(stored.action_id, agent_id="a1")
    assert back == stored
    assert str(back.resources_after) == "-0.0"
    assert back.details == {"big": 2**100, "u": "日本 😀", "f": 0.1, "t": [1, 2]}


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=actions(with_action_id=False))
def test_any_action_round_trips_through_the_server(mem, r, a):
    r.flushdb()
    stored = mem.actions.add(a)
    assert stored.model_copy(update={"action_id": None, "stored_at": None}) == a
    assert mem.actions.get(stored.action_id, agent_id=a.agent_id) == stored
    assert mem.actions.by_type(a.agent_id, a.action_type) == [stored]
    assert mem.actions.at_step(a.simulation_id, a.step_number) == [stored]


def test_add_many_takes_any_iterable(mem, r):
    out = mem.actions.add_many(act("a1", s) for s in range(3))
    assert ids(out) == ["a1-0-move", "a1-1-move", "a1-2-move"]


def test_embedding_is_stored_as_raw_bytes(mem, r):
    vec = np.random.default_rng(7).standard_normal(128).astype(np.float32)
    mem.actions.record(agent_id="a1", simulation_id="s", step_number=1, action_type="m",
                       embedding=vec)
    raw = r.hget("agent:a1:action:a1-1-m", "embedding")
    assert raw == vec.tobytes()
    assert len(raw) == 4 * 128
    assert mem.actions.get("a1-1-m", agent_id="a1").embedding.tobytes() == vec.tobytes()


def test_record_builds_and_stores_an_action(mem, r):
    a = mem.actions.record(agent_id="a1", simulation_id="sim01", step_number=2,
                           action_type="eat", reward=0.5, position=(1.0, 2.0))
    assert a.action_id == "a1-2-eat"
    assert mem.actions.get("a1-2-eat", agent_id="a1") == a


def test_explicit_action_id_is_used_as_given(mem, r):
    a = mem.actions.add(act("a1", 3, action_id="a1-3-custom"))
    assert a.action_id == "a1-3-custom"
    assert r.hget("agent:a1:action:a1-3-custom", "action_id") == b"a1-3-custom"
    assert r.zscore("agent:a1:action:timeline", "a1-3-custom") == 3.0
    assert r.smembers("agent:a1:action:types:move") == {b"a1-3-custom"}


@pytest.mark.parametrize("given", ["custom", "a2-3-move", "a1-4-move", "a1-3-", "a1-3-x-y",
                                   "a1-03-move"])
def test_explicit_action_id_must_name_its_agent_and_step(mem, r, given):
    with pytest.raises(InvalidInput):
        mem.actions.add(act("a1", 3, action_id=given))
    assert r.dbsize() == 0


@pytest.mark.parametrize("action_type", ["mo-ve", "-", "move-"])
def test_action_type_with_a_dash_is_refused(mem, r, action_type):
    with pytest.raises(InvalidInput):
        mem.actions.record(agent_id="a1", simulation_id="s", step_number=1,
                           action_type=action_type)
    assert r.dbsize() == 0


# -- duplicate ids -----------------------------------------------------------------

def test_duplicates_in_one_add_many_get_suffixes(mem, r):
    out = mem.actions.add_many([act("a1", 5, reward=float(i)) for i in range(3)])
    assert ids(out) == ["a1-5-move", "a1-5-move.1", "a1-5-move.2"]
    for i, a in enumerate(out):
        assert float(r.hget(f"agent:a1:action:{a.action_id}", "reward")) == float(i)
    assert r.zcard("agent:a1:action:timeline") == 3
    assert r.llen("simulation:sim01:actions") == 3
    assert r.hget("simulation:sim01:actions:by_type", "move") == b"3"


def test_duplicates_across_writes_get_suffixes(mem, r):
    first = mem.actions.add(act("a1", 5, reward=1.0))
    second = mem.actions.add(act("a1", 5, reward=2.0))
    third = mem.actions.add_many([act("a1", 5, reward=3.0), act("a1", 5, reward=4.0)])
    assert ids([first, second, *third]) == [
        "a1-5-move", "a1-5-move.1", "a1-5-move.2", "a1-5-move.3"]
    assert [float(r.hget(f"agent:a1:action:{i}", "reward"))
            for i in ids([first, second, *third])] == [1.0, 2.0, 3.0, 4.0]


def test_duplicate_suffixes_are_deterministic(connect, r):
    m = connect()
    out1 = ids(m.actions.add_many([act("a1", 5), act("a1", 5), act("a1", 6)]))
    r.flushdb()
    out2 = ids(m.actions.add_many([act("a1", 5), act("a1", 5), act("a1", 6)]))
    assert out1 == out2 == ["a1-5-move", "a1-5-move.1", "a1-6-move"]


def test_same_step_different_type_or_agent_is_not_a_duplicate(mem):
    out = mem.actions.add_many([act("a1", 5), act("a1", 5, "eat"), act("a2", 5)])
    assert ids(out) == ["a1-5-move", "a1-5-eat", "a2-5-move"]


def test_expired_id_still_in_timeline_is_not_reused(connect, r):
    m = connect(ttl=60)
    m.actions.add(act("a1", 5, reward=1.0))
    expire_now(r, "agent:a1:action:a1-5-move")
    again = m.actions.add(act("a1", 5, reward=2.0))
    assert again.action_id == "a1-5-move.1"
    assert not r.exists("agent:a1:action:a1-5-move")
    assert r.zscore("agent:a1:action:rewards", "a1-5-move") == 1.0


def test_explicit_existing_id_raises_duplicate_id_and_keeps_the_stored_one(mem, r):
    mem.actions.add(act("a1", 5, reward=1.0))
    before = r.hgetall("agent:a1:action:a1-5-move")
    with pytest.raises(DuplicateId) as info:
        mem.actions.add(act("a1", 5, "eat", reward=2.0, action_id="a1-5-move"))
    assert info.value.failed.keys() == {0}
    assert info.value.stored == []
    assert r.hgetall("agent:a1:action:a1-5-move") == before
    assert r.zscore("agent:a1:action:timeline", "a1-5-move") == 5.0
    assert not r.exists("agent:a1:action:types:eat")
    assert r.llen("simulation:sim01:actions") == 1


def test_explicit_existing_id_in_a_batch_refuses_only_that_record(mem, r):
    mem.actions.add(act("a1", 5))
    with pytest.raises(DuplicateId) as info:
        mem.actions.add_many([act("a1", 1), act("a1", 5, "eat", action_id="a1-5-move"),
                              act("a1", 3)])
    assert set(info.value.failed) == {1}
    assert sorted(info.value.stored) == ["a1-1-move", "a1-3-move"]
    assert [m.decode() for m in r.zrange("agent:a1:action:timeline", 0, -1)] == [
        "a1-1-move", "a1-3-move", "a1-5-move"]
    assert r.hget("agent:a1:action:a1-5-move", "step_number") == b"5"


def test_explicit_id_whose_hash_expired_is_still_taken(connect, r):
    m = connect(ttl=60)
    m.actions.add(act("a1", 5))
    expire_now(r, "agent:a1:action:a1-5-move")
    with pytest.raises(DuplicateId):
        m.actions.add(act("a1", 5, "eat", action_id="a1-5-move"))


def test_generated_id_skips_an_explicit_id_that_took_its_suffix(mem, r):
    mem.actions.add(act("a1", 5, action_id="a1-5-move.1"))
    out = mem.actions.add_many([act("a1", 5), act("a1", 5)])
    assert ids(out) == ["a1-5-move", "a1-5-move.2"]


def test_explicit_id_and_generated_id_with_the_same_base_in_one_batch(mem, r):
    """The explicit record keeps its id and its index entries; the generated one moves."""
    out = mem.actions.add_many([act("a1", 5, action_id="a1-5-move", reward=1.0),
                                act("a1", 5, reward=2.0)])
    assert ids(out) == ["a1-5-move", "a1-5-move.1"]
    assert zmembers(r, "agent:a1:action:timeline") == [("a1-5-move", 5.0),
                                                      ("a1-5-move.1", 5.0)]
    assert zmembers(r, "agent:a1:action:rewards") == [("a1-5-move", 1.0),
                                                     ("a1-5-move.1", 2.0)]


# -- large batches -------------------------------------------------------------------

def test_add_many_5000_stores_every_record_and_index(mem, r):
    agents = [f"ag{i}" for i in range(10)]
    types = ["move", "eat", "attack", "share"]
    batch = [act(agents[i % 10], i // 10, types[i % 4], reward=(i % 7) / 7,
                 action_target_id=f"t{i % 3}") for i in range(5000)]
    out = mem.actions.add_many(batch)
    assert len(out) == 5000
    assert len(set(ids(out))) == 5000
    assert r.llen("simulation:sim01:actions") == 5000
    assert r.lrange("simulation:sim01:actions", 0, -1) == [a.action_id.encode() for a in out]
    assert r.zcard("simulation:sim01:actions:steps") == 500
    assert {k.decode(): int(v) for k, v in r.hgetall("simulation:sim01:actions:by_type")
            .items()} == dict.fromkeys(types, 1250)
    assert sum(r.scard(f"simulation:sim01:actions:{s}") for s in range(500)) == 5000
    for agent in agents:
        assert r.zcard(f"agent:{agent}:action:timeline") == 500
        assert r.zcard(f"agent:{agent}:action:rewards") == 500
        assert r.zcard(f"agent:{agent}:action:relative_index") == 20
        assert sum(r.scard(f"agent:{agent}:action:types:{t}") for t in types) == 500
        assert sum(r.scard(f"agent:{agent}:action:targets:t{k}") for k in range(3)) == 500
    hashes = len(r.keys("agent:*:action:ag*"))
    assert hashes == 5000
    sample = out[4321]
    assert mem.actions.get(sample.action_id, agent_id=sample.agent_id) == sample


def test_add_many_with_small_batch_size_matches(connect, r):
    m = connect(batch_size=7)
    out = m.actions.add_many([act("a1", s % 10) for s in range(50)])
    assert len(set(ids(out))) == 50
    assert r.zcard("agent:a1:action:timeline") == 50
    assert r.zcard("agent:a1:action:relative_index") == 20
    assert sorted(ids(out)) == sorted(m.decode() for m in r.lrange("simulation:sim01:actions",
                                                                     0, -1))


def test_add_many_of_nothing_writes_nothing(mem, r):
    assert mem.actions.add_many([]) == []
    assert r.dbsize() == 0


# -- refused records ---------------------------------------------------------------

def test_key_of_wrong_type_refuses_only_that_record(mem, r):
    r.set("agent:a1:action:timeline", "x")
    with pytest.raises(WriteError) as info:
        mem.actions.add_many([act("a0", 1, reward=1.0), act("a1", 1, reward=1.0),
                              act("a2", 1, reward=1.0)])
    assert set(info.value.failed) == {1}
    assert "agent:a1:action:timeline" in info.value.failed[1]
    assert sorted(info.value.stored) == ["a0-1-move", "a2-1-move"]
    assert not isinstance(info.value, DuplicateId)
    # nothing of the refused record
    assert not r.exists("agent:a1:action:a1-1-move")
    assert r.get("agent:a1:action:timeline") == b"x"
    assert set(r.keys("agent:a1:*")) == {b"agent:a1:action:timeline"}
    assert r.lrange("simulation:sim01:actions", 0, -1) == [b"a0-1-move", b"a2-1-move"]
    assert r.smembers("simulation:sim01:actions:1") == {b"a0-1-move", b"a2-1-move"}
    assert r.hgetall("simulation:sim01:actions:by_type") == {b"move": b"2"}
    # the others whole
    for agent in ("a0", "a2"):
        assert r.exists(f"agent:{agent}:action:{agent}-1-move")
        assert r.zcard(f"agent:{agent}:action:timeline") == 1
        assert r.zcard(f"agent:{agent}:action:rewards") == 1


@pytest.mark.parametrize("bad_key", [
    "agent:a1:action:types:move", "agent:a1:action:rewards",
    "agent:a1:action:relative_index", "agent:a1:action:targets:t1",
])
def test_any_index_key_of_wrong_type_refuses_the_record(mem, r, bad_key):
    r.set(bad_key, "x")
    with pytest.raises(WriteError) as info:
        mem.actions.add_many([act("a1", 1, reward=1.0, action_target_id="t1"),
                              act("a2", 1, reward=1.0, action_target_id="t1")])
    assert set(info.value.failed) == {0}
    assert not r.exists("agent:a1:action:a1-1-move")
    assert r.lrange("simulation:sim01:actions", 0, -1) == [b"a2-1-move"]
    assert set(r.keys("agent:a1:*")) == {bad_key.encode()}


def test_shared_key_of_wrong_type_refuses_every_record_using_it(mem, r):
    r.set("simulation:sim01:actions", "x")
    with pytest.raises(WriteError) as info:
        mem.actions.add_many([act("a1", 1), act("a2", 1, sim="sim02"), act("a3", 1)])
    assert set(info.value.failed) == {0, 2}
    assert info.value.stored == ["a2-1-move"]
    assert sorted(k.decode() for k in r.keys("agent:*:action:a*-1-move")) == [
        "agent:a2:action:a2-1-move"]


def test_refused_record_in_a_later_batch(connect, r):
    m = connect(batch_size=2)
    r.set("agent:bad:action:timeline", "x")
    batch = [act("a0", 1), act("a1", 1), act("a2", 1), act("bad", 1), act("a4", 1), act("a5", 1)]
    with pytest.raises(WriteError) as info:
        m.actions.add_many(batch)
    assert set(info.value.failed) == {3}
    assert sorted(info.value.stored) == ["a0-1-move", "a1-1-move", "a2-1-move", "a4-1-move",
                                         "a5-1-move"]
    assert r.llen("simulation:sim01:actions") == 5
    assert not r.exists("agent:bad:action:bad-1-move")


def test_threads_sharing_a_store_get_distinct_ids(mem, r):
    from concurrent.futures import ThreadPoolExecutor

    def work(_: int) -> list[str]:
        return [mem.actions.add(act("a1", 5)).action_id for _ in range(25)]

    with ThreadPoolExecutor(8) as pool:
        got = [i for chunk in pool.map(work, range(8)) for i in chunk]
    assert sorted(got) == sorted(["a1-5-move"] + [f"a1-5-move.{n}" for n in range(1, 200)])
    assert r.zcard("agent:a1:action:timeline") == 200


def test_counter_holding_a_non_integer_refuses_the_record(mem, r):
    r.hset("simulation:sim01:actions:by_type", "move", "many")
    with pytest.raises(WriteError):
        mem.actions.add(act("a1", 1))
    assert r.dbsize() == 1


def test_action_hash_key_taken_by_another_type_gets_a_new_id(mem, r):
    r.set("agent:a1:action:a1-1-move", "x")
    a = mem.actions.add(act("a1", 1))
    assert a.action_id == "a1-1-move.1"
    assert r.get("agent:a1:action:a1-1-move") == b"x"


# -- scripts -------------------------------------------------------------------------

def test_write_after_script_flush_reloads_the_script(mem, r):
    mem.actions.add(act("a1", 1))
    r.script_flush()
    a = mem.actions.add(act("a1", 2))
    assert a.action_id == "a1-2-move"
    assert r.zcard("agent:a1:action:timeline") == 2
    r.script_flush()
    assert ids(mem.actions.by_type("a1", "move")) == ["a1-2-move", "a1-1-move"]


def test_add_many_of_several_batches_after_script_flush(connect, r):
    m = connect(batch_size=500)
    m.actions.add(act("a0", 0))
    r.script_flush()
    out = m.actions.add_many([act("a1", s % 300) for s in range(1200)])
    assert len(set(ids(out))) == 1200
    assert r.zcard("agent:a1:action:timeline") == 1200
    assert r.llen("simulation:sim01:actions") == 1201


def test_write_on_a_fresh_server_connection_needs_no_preloaded_scripts(server, r):
    r.script_flush()
    with agentmem.connect(server.url) as m:
        assert m.actions.add(act()).action_id == "a1-1-move"


# -- intermediate memory -------------------------------------------------------------

def test_im_action_write_uses_the_im_keys(mem, r):
    im = IMAction(action_id="a1-5-move", agent_id="a1", simulation_id="sim01", step_number=5,
                  action_type="move", reward=0.5, importance=0.75, action_target_id="t1")
    stored = mem.im_actions.add(im)
    assert stored == im
    assert keys(r) == {"agent:a1:im:action:a1-5-move", "agent:a1:im:action:timeline"}
    assert r.hgetall("agent:a1:im:action:a1-5-move") == {
        b"action_id": b"a1-5-move", b"agent_id": b"a1", b"simulation_id": b"sim01",
        b"step_number": b"5", b"action_type": b"move", b"reward": b"0.5",
        b"importance": b"0.75", b"action_target_id": b"t1"}  # the fields of section 6
    assert zmembers(r, "agent:a1:im:action:timeline") == [("a1-5-move", 5.0)]
    assert 0 < r.ttl("agent:a1:im:action:a1-5-move") <= 7 * 24 * 3600
    assert mem.im_actions.get("a1-5-move", agent_id="a1") == im
    assert mem.im_actions.range("im_timeline", agent_id="a1") == [im]


# -- big batches: every answer of the write script fits in a Lua unpack ---------------------

def test_batch_of_4500_duplicates_of_stored_ids(connect, r):
    m = connect(batch_size=5000)
    m.actions.add_many([act("a1", 5)] * 4500)
    out = m.actions.add_many([act("a1", 5)] * 4500)
    assert ids(out) == [f"a1-5-move.{n}" for n in range(4500, 9000)]


def test_batch_of_9000_explicit_ids_that_exist(connect, r):
    m = connect(batch_size=9000)
    batch = [act("a1", s, action_id=f"a1-{s}-x") for s in range(9000)]
    m.actions.add_many(batch)
    with pytest.raises(DuplicateId) as info:
        m.actions.add_many(batch)
    assert len(info.value.failed) == 9000


def _make(r, key: str, kind: str) -> None:
    {"string": lambda: r.set(key, "x"), "set": lambda: r.sadd(key, "x"),
     "zset": lambda: r.zadd(key, {"x": 1}), "list": lambda: r.rpush(key, "x"),
     "hash": lambda: r.hset(key, "x", "1")}[kind]()


@pytest.mark.parametrize("taken", [False, True])
@pytest.mark.parametrize(("bad_key", "kind"), [
    ("agent:a1:action:types:move", "zset"), ("agent:a1:action:types:move", "list"),
    ("agent:a1:action:types:move", "hash"), ("agent:a1:action:targets:t1", "zset"),
    ("simulation:sim01:actions:1", "zset"),
    ("agent:a1:action:rewards", "set"), ("agent:a1:action:relative_index", "list"),
    ("agent:a1:action:timeline", "set"), ("agent:a1:action:timeline", "hash"),
    ("simulation:sim01:actions:steps", "set"), ("simulation:sim01:actions", "set"),
    ("simulation:sim01:actions:by_type", "zset"),
])
def test_index_key_of_another_collection_type_refuses_the_records_using_it(
        mem, r, bad_key, kind, taken):
    # the write script checks sets together, sorted sets through their lookups or
    # one by one; a record whose id is taken on the server takes another path
    _make(r, bad_key, kind)
    if taken:
        r.hset("agent:a3:action:a3-1-move", "x", "1")
    before = {k: r.dump(k) for k in r.keys("*")}
    with pytest.raises(WriteError) as info:
        mem.actions.add_many([act("a1", 1, reward=1.0, action_target_id="t1"),
                              act("a2", 2, reward=1.0, action_target_id="t1"),
                              act("a3", 1, reward=1.0)])
    uses = {0, 2} if bad_key.startswith("simulation:sim01:actions:1") else (
        {0} if bad_key.startswith("agent:a1") else {0, 1, 2})
    assert set(info.value.failed) == uses
    assert bad_key in info.value.failed[min(uses)]
    assert {k: r.dump(k) for k in before} == before  # untouched
    keys = ["agent:a1:action:a1-1-move", "agent:a2:action:a2-2-move",
            "agent:a3:action:a3-1-move" + (".1" if taken else "")]
    for n, key in enumerate(keys):
        assert bool(r.exists(key)) == (n not in uses)


def test_set_keys_of_the_wrong_type_beyond_one_check_call(connect, r):
    # more set keys than one set check takes; the bad one in a later part
    m = connect(batch_size=3000)
    r.zadd("agent:a2500:action:types:move", {"x": 1})
    with pytest.raises(WriteError) as info:
        m.actions.add_many([act(f"a{i}", 1) for i in range(3000)])
    assert set(info.value.failed) == {2500}
    assert r.llen("simulation:sim01:actions") == 2999


def test_counter_field_checked_in_every_group_of_its_key(connect, r):
    # 1200 types: the counter hash takes three groups; the bad field is in the last
    m = connect(batch_size=2000)
    r.hset("simulation:sim01:actions:by_type", "t1100", "many")
    with pytest.raises(WriteError) as info:
        m.actions.add_many([act(f"a{i}", 1, f"t{i}") for i in range(1200)])
    assert set(info.value.failed) == set(range(1200))  # every record counts in that hash
    assert r.dbsize() == 1
    assert r.hgetall("simulation:sim01:actions:by_type") == {b"t1100": b"many"}


def test_batch_with_9000_keys_of_the_wrong_type(connect, r):
    m = connect(batch_size=9000)
    with r.pipeline(transaction=False) as p:
        for i in range(9000):
            p.set(f"agent:a{i}:action:timeline", "x")
        p.execute()
    with pytest.raises(WriteError) as info:
        m.actions.add_many([act(f"a{i}", 1) for i in range(9000)])
    assert len(info.value.failed) == 9000
    assert r.dbsize() == 9000


# -- options as documented -----------------------------------------------------------------

def test_ttl_none_means_no_expiry(connect, r):
    m = connect(ttl=None)
    m.actions.add(act("a1", 1))
    assert r.ttl("agent:a1:action:a1-1-move") == -1


def test_default_options(server, r):
    with agentmem.connect(server.url) as m:
        m.actions.add_many([act("a1", s) for s in range(25)])
    assert r.zcard("agent:a1:action:relative_index") == 20
    assert 0 < r.ttl("agent:a1:action:a1-0-move") <= 86400


def test_batch_size_one_numbers_duplicates_across_batches(connect, r):
    m = connect(batch_size=1)
    out = m.actions.add_many([act("a1", 5), act("a1", 5), act("a1", 6), act("a1", 5)])
    assert ids(out) == ["a1-5-move", "a1-5-move.1", "a1-6-move", "a1-5-move.2"]
    assert r.lrange("simulation:sim01:actions", 0, -1) == [i.encode() for i in ids(out)]


# -- server restarts (a server of our own) ---------------------------------------------------

KINDS = ["redis", "valkey"]


def own_server(kind: str, **options) -> LocalServer:
    if find_binary(kind) is None:
        pytest.skip(f"no {kind} server binary")
    return LocalServer(kind, **options).start()


@pytest.mark.parametrize("kind", KINDS)
def test_writes_and_reads_continue_after_a_restart(kind):
    srv = own_server(kind, appendonly=True)
    try:
        m = agentmem.connect(srv.url)
        first = m.actions.add(act("a1", 5, reward=1.0))
        assert ids(m.actions.by_type("a1", "move")) == ["a1-5-move"]
        srv.stop()  # graceful: the AOF is complete
        srv.start()
        # the server forgot the scripts and the connection is new; the data is back
        assert m.actions.get("a1-5-move", agent_id="a1") == first
        again = m.actions.add(act("a1", 5, reward=2.0))
        assert again.action_id == "a1-5-move.1"
        assert ids(m.actions.by_type("a1", "move")) == ["a1-5-move.1", "a1-5-move"]
        m.close()
    finally:
        srv.close()


@pytest.mark.parametrize("kind", KINDS)
def test_killed_server_raises_unavailable_and_the_store_recovers(kind):
    srv = own_server(kind)
    try:
        m = agentmem.connect(srv.url)
        m.actions.add(act("a1", 1))
        srv.kill()
        with pytest.raises(Unavailable):
            m.actions.add(act("a1", 2))
        with pytest.raises(Unavailable):
            m.actions.recent("a1")
        srv.start()  # same port, empty (no persistence)
        assert m.actions.add(act("a1", 2)).action_id == "a1-2-move"
        assert ids(m.actions.recent("a1")) == ["a1-2-move"]
        m.close()
    finally:
        srv.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_async_store_recovers_after_a_restart(kind):
    srv = own_server(kind)
    try:
        m = agentmem.connect_async(srv.url)
        await m.actions.add(act("a1", 1))
        srv.stop()
        with pytest.raises(Unavailable):
            await m.actions.recent("a1")
        srv.start()
        assert (await m.actions.add(act("a1", 3))).action_id == "a1-3-move"
        assert ids(await m.actions.by_type("a1", "move")) == ["a1-3-move"]
        await m.close()
    finally:
        srv.close()
