"""Every query of the action repository against hand-built data with known answers."""

from __future__ import annotations

import enum

import numpy as np
import pytest
from _support import act, expire_now, ids

import agentmem
from agentmem.config import DEFAULT_BATCH_SIZE
from agentmem.errors import BackendError, DecodeError, InvalidId, InvalidInput

# agent a1 in sim01: (step, type, target, reward, position)
A1 = [
    (1, "move", None, 0.1, (0.0, 0.0)),
    (2, "gather", "r1", 0.6, (1.0, 1.0)),
    (3, "attack", "a2", -0.5, None),
    (4, "move", None, 0.5, (0.1, 0.0)),
    (5, "share", "a2", 0.9, None),
    (6, "move", None, None, None),
    (7, "attack", "a2", 0.0, None),
    (8, "move", "r1", 0.7, (5.0, 5.0)),
]
OTHERS = [
    act("a2", 2, "move", reward=0.95, action_target_id="a1"),
    act("a-1", 5, "move", reward=0.3),
    act("a2", 5, "attack", reward=0.8, action_target_id="a1"),
    act("a3", 5, "move", sim="sim02", reward=0.9),
]


def a1(step: int) -> str:
    return next(f"a1-{s}-{t}" for s, t, *_ in A1 if s == step)


def a1s(*steps: int) -> list[str]:
    return [a1(s) for s in steps]


def write(repo) -> list:
    batch = [act("a1", s, t, action_target_id=tg, reward=rw, position=pos)
             for s, t, tg, rw, pos in A1]
    # a1 first in one batch, then the others, so the simulation list order is known
    return repo.add_many(batch) + repo.add_many(OTHERS)


SIM01_ORDER = [*a1s(1, 2, 3, 4, 5, 6, 7, 8), "a2-2-move", "a-1-5-move", "a2-5-attack"]


@pytest.fixture
def data(mem):
    written = write(mem.actions)
    return {a.action_id: a for a in written}


# -- get -------------------------------------------------------------------------

def test_get_returns_the_stored_action(mem, data):
    assert mem.actions.get(a1(5), agent_id="a1") == data[a1(5)]


def test_get_of_unknown_id_is_none(mem, data):
    assert mem.actions.get("a1-99-move", agent_id="a1") is None
    assert mem.actions.get(a1(5), agent_id="a2") is None


def test_get_many_keeps_order_and_marks_missing(mem, data):
    out = mem.actions.get_many([a1(8), "nope", a1(1)], agent_id="a1")
    assert out == [data[a1(8)], None, data[a1(1)]]


def test_get_with_bad_id_raises_invalid_id(mem, data):
    with pytest.raises(InvalidId):
        mem.actions.get("a:b", agent_id="a1")


# -- by type / target --------------------------------------------------------------

def test_by_type_is_newest_first(mem, data):
    assert ids(mem.actions.by_type("a1", "move")) == a1s(8, 6, 4, 1)
    assert ids(mem.actions.by_type("a1", "attack")) == a1s(7, 3)


def test_by_type_limit(mem, data):
    assert ids(mem.actions.by_type("a1", "move", limit=2)) == a1s(8, 6)
    assert mem.actions.by_type("a1", "move", limit=0) == []


def test_by_type_returns_full_actions(mem, data):
    assert mem.actions.by_type("a1", "share") == [data[a1(5)]]


def test_by_type_of_unknown_type_or_agent_is_empty(mem, data):
    assert mem.actions.by_type("a1", "fly") == []
    assert mem.actions.by_type("nobody", "move") == []


def test_by_type_with_bad_type_raises(mem, data):
    with pytest.raises(InvalidId):
        mem.actions.by_type("a1", "m" * 21)


def test_by_target_is_newest_first(mem, data):
    assert ids(mem.actions.by_target("a1", "a2")) == a1s(7, 5, 3)
    assert ids(mem.actions.by_target("a1", "r1")) == a1s(8, 2)
    assert ids(mem.actions.by_target("a1", "a2", limit=1)) == a1s(7)
    assert mem.actions.by_target("a1", "zz") == []


def test_negative_limit_is_invalid(mem, data):
    with pytest.raises(InvalidInput):
        mem.actions.by_type("a1", "move", limit=-1)


class _Two(enum.IntEnum):
    TWO = 2


@pytest.mark.parametrize("limit", [_Two.TWO, np.int64(2), np.int32(2)],
                         ids=["IntEnum", "int64", "int32"])
def test_integer_like_limits_and_positions_act_as_ints(mem, data, limit):
    """An IntEnum or a numpy integer (what simulations hold) is a limit, an offset or a
    relative position like the int it equals, sent to the server as that int."""
    assert ids(mem.actions.by_type("a1", "move", limit=limit)) == a1s(8, 6)
    assert ids(mem.actions.recent("a1", limit)) == a1s(8, 7)
    assert ids(mem.actions.high_reward("a1", 0.0, limit=limit)) == a1s(5, 8)
    assert ids(mem.actions.simulation_actions("sim01", 0, limit)) == SIM01_ORDER[:3]
    assert mem.actions.relative("a1", -limit) == data[a1(6)]


@pytest.mark.parametrize("limit", [True, 2.0, "2", np.float64(2.0)])
def test_limits_that_are_not_integers_are_invalid(mem, data, limit):
    with pytest.raises(InvalidInput):
        mem.actions.by_type("a1", "move", limit=limit)


# -- rewards -----------------------------------------------------------------------

def test_high_reward_is_highest_first_with_inclusive_threshold(mem, data):
    assert ids(mem.actions.high_reward("a1")) == a1s(5, 8, 2, 4)
    assert ids(mem.actions.high_reward("a1", min_reward=0.6)) == a1s(5, 8, 2)


def test_high_reward_limit(mem, data):
    assert ids(mem.actions.high_reward("a1", limit=2)) == a1s(5, 8)
    assert ids(mem.actions.high_reward("a1", min_reward=-1.0, limit=None)) == a1s(
        5, 8, 2, 4, 1, 7, 3)


def test_high_reward_skips_actions_without_reward(mem, data):
    out = ids(mem.actions.high_reward("a1", min_reward=float("-inf"), limit=None))
    assert a1(6) not in out
    assert len(out) == 7


def test_high_reward_above_every_reward_is_empty(mem, data):
    assert mem.actions.high_reward("a1", min_reward=0.91) == []


def test_successful_interactions_need_positive_reward(mem, data):
    # a1-3 (-0.5) and a1-7 (0.0) target a2 but are not successes
    assert ids(mem.actions.successful_interactions("a1", "a2")) == a1s(5)


def test_successful_interactions_highest_reward_first_and_limit(mem, data):
    assert ids(mem.actions.successful_interactions("a1", "r1")) == a1s(8, 2)
    assert ids(mem.actions.successful_interactions("a1", "r1", limit=1)) == a1s(8)
    assert mem.actions.successful_interactions("a1", "nobody") == []


def test_find_successful_interactions_with_is_successful_interactions(mem, data):
    assert ids(mem.actions.find_successful_interactions_with("a1", "r1")) == a1s(8, 2)
    assert ids(mem.actions.find_successful_interactions_with("a2", "a1")) == [
        "a2-2-move", "a2-5-attack"]


# -- timeline ----------------------------------------------------------------------

def test_timeline_is_oldest_first(mem, data):
    assert ids(mem.actions.timeline("a1")) == a1s(1, 2, 3, 4, 5, 6, 7, 8)


def test_timeline_bounds_are_inclusive(mem, data):
    assert ids(mem.actions.timeline("a1", 3, 5)) == a1s(3, 4, 5)
    assert ids(mem.actions.timeline("a1", start=7)) == a1s(7, 8)
    assert ids(mem.actions.timeline("a1", end=2)) == a1s(1, 2)
    assert mem.actions.timeline("a1", 9) == []
    assert mem.actions.timeline("a1", 5, 4) == []


def test_timeline_newest_first_and_limit(mem, data):
    assert ids(mem.actions.timeline("a1", 3, 5, newest_first=True)) == a1s(5, 4, 3)
    assert ids(mem.actions.timeline("a1", limit=2)) == a1s(1, 2)
    assert ids(mem.actions.timeline("a1", newest_first=True, limit=2)) == a1s(8, 7)
    assert ids(mem.actions.timeline("a1", 2, 6, newest_first=True, limit=2)) == a1s(6, 5)


def test_recent_is_newest_first(mem, data):
    assert ids(mem.actions.recent("a1", 3)) == a1s(8, 7, 6)
    assert ids(mem.actions.recent("a1")) == a1s(8, 7, 6, 5, 4, 3, 2, 1)
    assert mem.actions.recent("a1", 0) == []
    assert mem.actions.recent("nobody", 3) == []


# -- relative positions --------------------------------------------------------------

@pytest.mark.parametrize(("position", "step"), [(0, 8), (-1, 7), (-2, 6), (-7, 1)])
def test_relative_position(mem, data, position, step):
    assert mem.actions.relative("a1", position) == data[a1(step)]


def test_relative_default_is_newest(mem, data):
    assert mem.actions.relative("a1").action_id == a1(8)


def test_relative_before_the_first_action_is_none(mem, data):
    assert mem.actions.relative("a1", -8) is None
    assert mem.actions.relative("nobody", 0) is None


@pytest.mark.parametrize("position", [1, 5])
def test_relative_positive_position_is_invalid(mem, data, position):
    with pytest.raises(InvalidInput):
        mem.actions.relative("a1", position)


def test_relative_beyond_the_relative_index_reads_the_timeline(connect, r):
    m = connect(relative_index_size=3)
    m.actions.add_many([act("a1", s) for s in range(10)])
    assert r.zcard("agent:a1:action:relative_index") == 3
    assert [m.actions.relative("a1", -k).step_number for k in range(10)] == list(
        range(9, -1, -1))
    assert m.actions.relative("a1", -10) is None


def test_relative_beyond_the_default_index_of_20(mem, r):
    mem.actions.add_many([act("a1", s) for s in range(30)])
    assert mem.actions.relative("a1", -19).step_number == 10
    assert mem.actions.relative("a1", -20).step_number == 9
    assert mem.actions.relative("a1", -29).step_number == 0


# -- simulation level ----------------------------------------------------------------

def test_at_step_returns_every_agent_ordered_by_id(mem, data):
    assert ids(mem.actions.at_step("sim01", 5)) == ["a-1-5-move", a1(5), "a2-5-attack"]
    assert mem.actions.at_step("sim01", 5)[0] == data["a-1-5-move"]


def test_at_step_limit_and_empty_step(mem, data):
    assert ids(mem.actions.at_step("sim01", 5, limit=2)) == ["a-1-5-move", a1(5)]
    assert mem.actions.at_step("sim01", 99) == []
    assert ids(mem.actions.at_step("sim02", 5)) == ["a3-5-move"]


def test_action_types_with_a_dot_or_dash_are_refused(mem, r):
    # '.' would collide with duplicate suffixes (type move.1 vs the 2nd move), '-' with
    # the id's separators; both are refused before anything is written
    for bad in ("move.1", "5-move"):
        with pytest.raises(agentmem.InvalidInput, match="action_type"):
            mem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type=bad)
    assert r.dbsize() == 0


def test_at_step_resolves_agent_ids_with_dashes_and_digits(mem):
    mem.actions.add_many([act("x-1-2", 3), act("x-1", 3, "3"), act("x", 3, "x1"),
                          act("x-3", 3), act("x-1-3", 3, "move_1")])
    got = {(a.agent_id, a.action_type) for a in mem.actions.at_step("sim01", 3)}
    assert got == {("x-1-2", "move"), ("x-1", "3"), ("x", "x1"), ("x-3", "move"),
                   ("x-1-3", "move_1")}
    assert {a.agent_id for a in mem.actions.simulation_actions("sim01")} == {
        "x-1-2", "x-1", "x", "x-3", "x-1-3"}


def test_at_step_never_returns_an_action_of_another_step(mem):
    mem.actions.add_many([act("a", 1, "x5"), act("a-1", 5), act("a-1-5", 1, "move"),
                          act("a", 5, "move")])
    assert sorted((a.agent_id, a.step_number) for a in mem.actions.at_step("sim01", 5)) == [
        ("a", 5), ("a-1", 5)]
    assert sorted((a.agent_id, a.step_number) for a in mem.actions.at_step("sim01", 1)) == [
        ("a", 1), ("a-1-5", 1)]


def test_simulation_actions_in_write_order(mem, data):
    assert ids(mem.actions.simulation_actions("sim01")) == SIM01_ORDER


def test_simulation_actions_slices_like_lrange(mem, data):
    assert ids(mem.actions.simulation_actions("sim01", 1, 2)) == SIM01_ORDER[1:3]
    assert ids(mem.actions.simulation_actions("sim01", -2, -1)) == SIM01_ORDER[-2:]
    assert ids(mem.actions.simulation_actions("sim01", 9)) == SIM01_ORDER[9:]
    assert mem.actions.simulation_actions("sim01", 50, 60) == []
    assert mem.actions.simulation_actions("nosim") == []


def test_steps_ascending_with_inclusive_bounds(mem, data):
    assert mem.actions.steps("sim01") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert mem.actions.steps("sim01", 3, 5) == [3, 4, 5]
    assert mem.actions.steps("sim01", start=7) == [7, 8]
    assert mem.actions.steps("sim01", end=1) == [1]
    assert mem.actions.steps("sim02") == [5]
    assert mem.actions.steps("nosim") == []


def test_type_counts(mem, data):
    assert mem.actions.type_counts("sim01") == {"move": 6, "gather": 1, "attack": 3,
                                                "share": 1}
    assert mem.actions.type_counts("sim02") == {"move": 1}
    assert mem.actions.type_counts("nosim") == {}


# -- analytics through the repository ------------------------------------------------

def test_learn_from_past_actions_without_position(mem, data):
    lesson = mem.actions.learn_from_past_actions("a1", "move")
    assert lesson.action_count == 4
    assert lesson.avg_reward == pytest.approx((0.7 + 0.5 + 0.1) / 3)
    assert lesson.best_action == data[a1(8)]


def test_learn_from_past_actions_prefers_nearby(mem, data):
    lesson = mem.actions.learn_from_past_actions("a1", "move", position=(0.0, 0.0))
    assert lesson.action_count == 2  # steps 1 (distance 0) and 4 (distance 0.1)
    assert lesson.avg_reward == pytest.approx(0.3)
    assert lesson.best_action.action_id == a1(4)


def test_learn_from_past_actions_radius(mem, data):
    lesson = mem.actions.learn_from_past_actions("a1", "move", position=(0.0, 0.0),
                                                 radius=10.0)
    assert lesson.action_count == 3  # step 6 has no position
    assert lesson.best_action.action_id == a1(8)


def test_learn_from_past_actions_falls_back_when_none_near(mem, data):
    lesson = mem.actions.learn_from_past_actions("a1", "move", position=(100.0, 100.0))
    assert lesson.action_count == 4


def test_learn_from_past_actions_limit_takes_the_newest(mem, data):
    lesson = mem.actions.learn_from_past_actions("a1", "move", limit=2)  # steps 8, 6
    assert lesson.action_count == 2
    assert lesson.avg_reward == pytest.approx(0.7)
    assert lesson.best_action.action_id == a1(8)


def test_learn_from_past_actions_of_unknown_type_is_none(mem, data):
    assert mem.actions.learn_from_past_actions("a1", "fly") is None


def test_analyze_action_sequence(mem, data):
    seq = mem.actions.analyze_action_sequence("a1", 4)
    assert seq.sequence == ["move", "attack", "move", "share"]
    assert seq.action_counts == {"move": 2, "attack": 1, "share": 1}
    assert seq.most_common == "move"
    assert seq.avg_reward == pytest.approx((0.7 + 0.0 + 0.9) / 3)
    assert seq.cycle_detected is False


def test_analyze_action_sequence_detects_abab(mem):
    mem.actions.add_many([act("a1", s, t) for s, t in
                          enumerate(["rest", "move", "eat", "move", "eat"])])
    seq = mem.actions.analyze_action_sequence("a1", 5)
    assert seq.sequence == ["eat", "move", "eat", "move", "rest"]
    assert seq.cycle_detected is True
    assert seq.avg_reward is None


def test_analyze_action_sequence_of_no_actions_is_none(mem):
    assert mem.actions.analyze_action_sequence("a1") is None


# -- expired hashes ------------------------------------------------------------------

@pytest.fixture
def expired(data, r):
    """a1's newest move (step 8) and a2-5-attack have expired; their index entries remain."""
    expire_now(r, f"agent:a1:action:{a1(8)}")
    expire_now(r, "agent:a2:action:a2-5-attack")
    return data


def test_expired_skipped_by_type(mem, expired):
    assert ids(mem.actions.by_type("a1", "move")) == a1s(6, 4, 1)
    assert ids(mem.actions.by_type("a1", "move", limit=2)) == a1s(6, 4)


def test_expired_skipped_by_target(mem, expired):
    assert ids(mem.actions.by_target("a1", "r1")) == a1s(2)


def test_expired_skipped_high_reward(mem, expired):
    assert ids(mem.actions.high_reward("a1", limit=3)) == a1s(5, 2, 4)


def test_expired_skipped_successful_interactions(mem, expired):
    assert ids(mem.actions.successful_interactions("a1", "r1")) == a1s(2)


def test_expired_skipped_timeline_and_recent(mem, expired):
    assert ids(mem.actions.timeline("a1", 6)) == a1s(6, 7)
    assert ids(mem.actions.timeline("a1", newest_first=True, limit=2)) == a1s(7, 6)
    assert ids(mem.actions.recent("a1", 3)) == a1s(7, 6, 5)


def test_expired_skipped_at_step_and_simulation(mem, expired):
    assert ids(mem.actions.at_step("sim01", 5)) == ["a-1-5-move", a1(5)]
    assert ids(mem.actions.simulation_actions("sim01")) == [
        i for i in SIM01_ORDER if i not in (a1(8), "a2-5-attack")]


def test_expired_get_is_none(mem, expired):
    assert mem.actions.get(a1(8), agent_id="a1") is None
    assert mem.actions.get_many([a1(8), a1(7)], agent_id="a1") == [None, expired[a1(7)]]


def test_expired_relative_position_is_none_as_in_the_spec(mem, expired):
    assert mem.actions.relative("a1", 0) is None
    assert mem.actions.relative("a1", -1) == expired[a1(7)]


# -- one round trip each --------------------------------------------------------------

QUERIES = {
    "get": lambda q: q.get(a1(5), agent_id="a1"),
    "get_many": lambda q: q.get_many([a1(5), a1(1), "x"], agent_id="a1"),
    "by_type": lambda q: q.by_type("a1", "move", limit=2),
    "by_target": lambda q: q.by_target("a1", "a2"),
    "high_reward": lambda q: q.high_reward("a1", 0.5, 3),
    "successful_interactions": lambda q: q.successful_interactions("a1", "a2"),
    "find_successful_interactions_with": lambda q: q.find_successful_interactions_with(
        "a1", "r1"),
    "timeline": lambda q: q.timeline("a1", 2, 6, newest_first=True, limit=3),
    "recent": lambda q: q.recent("a1", 5),
    "relative_0": lambda q: q.relative("a1", 0),
    "relative_-7": lambda q: q.relative("a1", -7),
    "at_step": lambda q: q.at_step("sim01", 5),
    "simulation_actions": lambda q: q.simulation_actions("sim01", 0, -1),
    "steps": lambda q: q.steps("sim01", 2, 6),
    "type_counts": lambda q: q.type_counts("sim01"),
    "learn_from_past_actions": lambda q: q.learn_from_past_actions("a1", "move", (0.0, 0.0)),
    "analyze_action_sequence": lambda q: q.analyze_action_sequence("a1", 5),
    "near": lambda q: q.near("a1", 0.0, 0.0, 50.0, limit=3, action_type="move"),
    "near_at": lambda q: q.near_at("sim01", 0.0, 0.0, 50.0, start=0, end=9),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_each_query_is_one_command(counted, data, name):
    m, proxy = counted
    query = QUERIES[name]
    expected = query(m.actions)  # warm up: connection set up, scripts loaded
    proxy.reset()
    again = query(m.actions)
    assert proxy.commands == 1
    assert again == expected


def test_a_write_of_one_batch_is_one_command(counted):
    m, proxy = counted
    m.actions.add(act("a9", 0))  # warm up
    proxy.reset()
    m.actions.add_many([act("a1", s % 7, reward=0.1) for s in range(100)])
    assert proxy.commands == 1


def test_a_write_of_three_batches_is_three_commands(counted):
    m, proxy = counted
    m.actions.add(act("a9", 0))
    proxy.reset()
    n = 2 * DEFAULT_BATCH_SIZE + 10
    out = m.actions.add_many([act("a1", s) for s in range(n)])
    assert len(out) == n
    assert proxy.commands == 3


def test_the_command_counter_counts_every_command(counted, data):
    m, proxy = counted
    m.actions.steps("sim01")
    proxy.reset()
    m.actions.steps("sim01")
    m.actions.type_counts("sim01")
    m.client.ping()
    assert proxy.commands == 3


# -- damaged data ----------------------------------------------------------------------

def test_undecodable_hash_raises_decode_error(mem, data, r):
    r.hset(f"agent:a1:action:{a1(4)}", "step_number", "four")
    with pytest.raises(DecodeError):
        mem.actions.by_type("a1", "move")
    assert ids(mem.actions.by_type("a1", "attack")) == a1s(7, 3)


def test_non_integer_count_raises_decode_error(mem, data, r):
    r.hset("simulation:sim01:actions:by_type", "move", "many")
    with pytest.raises(DecodeError):
        mem.actions.type_counts("sim01")


def test_index_of_the_wrong_type_raises_backend_error(mem, r):
    r.set("agent:a1:action:timeline", "x")
    with pytest.raises(BackendError):
        mem.actions.recent("a1")
    with pytest.raises(BackendError):
        mem.actions.relative("a1", 0)
