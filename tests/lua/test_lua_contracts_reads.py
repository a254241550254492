"""The read scripts called directly on a real server (Redis 7 and Valkey 9), with the raw
ARGV their header states: the relative, simulation, sorted-index and set-by-score
fetches, radius search (all three modes) and the sequence read. Each test checks the
raw reply against docs/keyspace.md. (The write and outbox scripts:
test_lua_contracts_large.py; the tier and check/repair scripts:
test_lua_contracts_tiers.py.)"""

from __future__ import annotations

import redis

import agentmem
from agentmem import Action
from agentmem.lua import radius, scripts, search
from agentmem.lua.loader import Script
from agentmem.plans import grid
from agentmem.tiers import Tiers

PRE = "agent:a1:action:"  # layout 1: the action hash is PRE + id
TL, REL, RW = PRE + "timeline", PRE + "relative_index", PRE + "rewards"
SIM_SHAPE = ["agent:", ":action:", ""]  # the action key around (agent id, action id)


def _run(r: redis.Redis, script: Script, keys: list[str], *argv: object) -> object:
    return r.evalsha(script.sha, len(keys), *keys, *argv) if r.script_exists(script.sha)[0] \
        else r.eval(script.source, len(keys), *keys, *argv)


def _h(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _ids(rows: list[list[bytes]]) -> list[bytes]:
    return [_h(row)[b"action_id"] for row in rows]


def _act(step: int, action_type: str = "move", agent: str = "a1", **kw: object) -> Action:
    return Action(agent_id=agent, simulation_id="s1", step_number=step,
                  action_type=action_type, **kw)


def test_relative_fetch_reads_the_relative_index_then_the_timeline(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i) for i in range(25)])
    rf = scripts.RELATIVE_FETCH

    def at(k: int) -> list[list[bytes]]:
        return _run(r, rf, [], REL, TL, PRE, "", k)  # type: ignore[return-value]

    assert _ids(at(0)) == [b"a1-24-move"]
    assert _ids(at(19)) == [b"a1-5-move"]  # the oldest the relative index holds
    assert _ids(at(22)) == [b"a1-2-move"]  # past it: the timeline
    assert at(25) == []
    r.delete(PRE + "a1-23-move")
    assert at(1) == []  # an expired hash reads as nothing


def test_zrange_fetch_by_score(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i) for i in range(6)])
    zf = scripts.ZRANGE_FETCH
    out = _run(r, zf, [], TL, PRE, "", "score", "2", "4", "0", -1)
    assert _ids(out) == [b"a1-2-move", b"a1-3-move", b"a1-4-move"]
    out = _run(r, zf, [], TL, PRE, "", "score", "-inf", "+inf", "1", 2)
    assert _ids(out) == [b"a1-5-move", b"a1-4-move"]


def test_zrange_fetch_by_rank_fills_the_limit_past_expired_hashes(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i) for i in range(6)])
    r.delete(PRE + "a1-5-move", PRE + "a1-4-move")
    out = _run(r, scripts.ZRANGE_FETCH, [], TL, PRE, "", "rank", "0", "1", "1", 2)
    assert _ids(out) == [b"a1-3-move", b"a1-2-move"]


def test_set_sorted_fetch_orders_a_set_by_a_sorted_index(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    rewards = [0.3, None, 0.9, 0.1]
    mem.actions.add_many([_act(i, reward=w) for i, w in enumerate(rewards)])
    mem.actions.add(_act(9, "eat", reward=5.0))
    ssf, types = scripts.SET_SORTED_FETCH, PRE + "types:move"
    out = _run(r, ssf, [], types, RW, PRE, "", "1", -1, "", "0")
    # by reward, highest first; no reward sorts last
    assert _ids(out) == [b"a1-2-move", b"a1-0-move", b"a1-3-move", b"a1-1-move"]
    assert _ids(_run(r, ssf, [], types, RW, PRE, "", "0", 2, "", "0")) == [
        b"a1-1-move", b"a1-3-move"]
    assert _ids(_run(r, ssf, [], types, RW, PRE, "", "1", -1, "0.3", "0")) == [
        b"a1-2-move", b"a1-0-move"]  # min 0.3 inclusive
    assert _ids(_run(r, ssf, [], types, RW, PRE, "", "1", -1, "0.3", "1")) == [b"a1-2-move"]


def test_sim_fetch_resolves_each_id_to_its_agents_hash(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    # an agent id with '-' and digits: 'a-1-3-move' could be agent 'a' at step 1
    mem.actions.add_many([_act(3, agent="a-1"), _act(3, agent="b"), _act(4, agent="b")])
    sf = scripts.SIM_FETCH
    out = _run(r, sf, [], "simulation:s1:actions", "list", 0, -1, *SIM_SHAPE, -1, "")
    assert _ids(out) == [b"a-1-3-move", b"b-3-move", b"b-4-move"]  # write order
    assert _h(out[0])[b"agent_id"] == b"a-1"
    out = _run(r, sf, [], "simulation:s1:actions:3", "set", 0, -1, *SIM_SHAPE, 1, "3")
    assert _ids(out) == [b"a-1-3-move"]  # a set: sorted by id; limit 1
    r.delete("agent:b:action:b-3-move")
    out = _run(r, sf, [], "simulation:s1:actions", "list", 1, -1, *SIM_SHAPE, -1, "")
    assert _ids(out) == [b"b-4-move"]  # a gone hash is skipped


# -- radius/near.lua --------------------------------------------------------------------

POINTS = {"a1-0-move": (0.0, 0.0), "a1-1-eat": (1.0, 0.0), "a1-2-move": (3.0, 4.0),
          "a1-3-move": (10.0, 10.0)}


def _points(mem: agentmem.Memory) -> None:
    mem.actions.add_many([_act(int(i.split("-")[1]), i.split("-")[2], position=p,
                               reward=float(int(i.split("-")[1])))
                          for i, p in POINTS.items()])


def _near(r: redis.Redis, mode: str, shape: list[str], limit: int, filters: list[object],
          keys: list[object]) -> list[object]:
    """A query at (0, 0), radius 5, the code ranges of the library's cover of the circle."""
    ranges = grid.range_args(grid.ranked_cover(0.0, 0.0, 5.0, 1.0))
    return _run(r, radius.NEAR, [], mode, *shape, "position_x", "position_y", "0.0", "0.0",
                "25.0", limit, *filters, *keys, *ranges)  # type: ignore[return-value]


def test_near_returns_the_records_within_the_radius_nearest_first(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _points(mem)
    out = _near(r, "r", [PRE, "", ""], -1, ["", 0, "", "", ""],
                ["keys", 1, PRE + "grid", ""])
    assert out[0::2] == [b"0", b"1", b"25"]  # squared distances; (10, 10) is outside
    assert _ids(out[1::2]) == [b"a1-0-move", b"a1-1-eat", b"a1-2-move"]
    out = _near(r, "r", [PRE, "", ""], 1, ["", 0, "", "", ""], ["keys", 1, PRE + "grid", ""])
    assert _ids(out[1::2]) == [b"a1-0-move"]


def test_near_over_simulation_steps_with_filters(mem: agentmem.Memory, r: redis.Redis) -> None:
    _points(mem)
    steps = ["steps", "simulation:s1:actions:steps", "-inf", "+inf", "simulation:s1:actions:",
             ":grid"]
    out = _near(r, "s", SIM_SHAPE, -1, ["action_type", 1, "move", "", "", ""], steps)
    assert _ids(out[1::2]) == [b"a1-0-move", b"a1-2-move"]  # 'eat' filtered out
    out = _near(r, "s", SIM_SHAPE, -1, ["", 0, "reward", "1", ""], steps)
    assert _ids(out[1::2]) == [b"a1-1-eat", b"a1-2-move"]  # reward >= 1


def test_near_candidates_mode_reads_no_hash(mem: agentmem.Memory, r: redis.Redis) -> None:
    _points(mem)
    r.delete(PRE + "a1-1-eat")  # candidates come from the grid alone
    keys = ["keys", 2, "simulation:s1:actions:0:grid", "0", "simulation:s1:actions:1:grid", "1"]
    out = _near(r, "c", SIM_SHAPE, -1, ["", 0, "", "", ""], keys)
    assert out == [b"a1-0-move", b"0", b"a1-1-eat", b"1"]


# -- search/sequence.lua ----------------------------------------------------------------

TR = ("action_type", "reward")  # the type and reward fields of each timeline's hashes


def test_sequence_reads_tier_id_step_type_reward(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(1, reward=0.5), _act(2, "eat"), _act(3, reward=-1.0)])
    out = _run(r, search.SEQUENCE, [], "-inf", "+inf", -1, "0", "s", TL, PRE, "", *TR)
    assert out == [b"s", b"a1-1-move", b"1", b"move", b"0.5",
                   b"s", b"a1-2-eat", b"2", b"eat", None,  # no reward: false
                   b"s", b"a1-3-move", b"3", b"move", b"-1.0"]
    r.delete(PRE + "a1-2-eat")
    out = _run(r, search.SEQUENCE, [], "2", "3", -1, "0", "s", TL, PRE, "", *TR)
    assert out[1::5] == [b"a1-3-move"]  # a gone hash is skipped


def test_sequence_newest_merged_over_both_tiers(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i, reward=1.0) for i in range(1, 6)])
    Tiers(mem).transition("a1", ["a1-1-move", "a1-2-move", "a1-3-move"])
    itl, ipre = "agent:a1:im:action:timeline", "agent:a1:im:action:"

    def newest(limit: int) -> list[tuple[bytes, bytes]]:
        out = _run(r, search.SEQUENCE, [], "-inf", "+inf", limit, "1", "s", TL, PRE, "", *TR,
                   "i", itl, ipre, "", *TR)
        return [(out[i], out[i + 1]) for i in range(0, len(out), 5)]

    # the timelines merged by (step, id), newest first, at most limit in all
    assert newest(3) == [(b"s", b"a1-5-move"), (b"s", b"a1-4-move"), (b"i", b"a1-3-move")]
    # gone hashes (STM and IM) are skipped and the timelines read on to fill the limit
    r.delete(PRE + "a1-4-move", ipre + "a1-3-move")
    assert newest(2) == [(b"s", b"a1-5-move"), (b"i", b"a1-2-move")]
    assert newest(0) == []
