"""The tier scripts (the STM -> IM move, whole and in its two cluster parts, the IM
eviction plan, the history read) and the seven check/repair scripts, called directly
on a real server (Redis 7 and Valkey 9) with the raw ARGV their header states. The
keys are set up by writing actions through agentmem, then changed by hand where a
test plants an inconsistency; each test checks the raw reply and the raw keys.
(The write and read scripts are in test_lua_contracts_large.py.)"""

from __future__ import annotations

from collections.abc import Callable

import redis

import agentmem
from agentmem import Action
from agentmem.lua import cluster, integrity, tiers
from agentmem.lua.loader import Script
from agentmem.plans.keyspace import layout
from agentmem.tiers import Shapes, Tiers
from agentmem.tiers.archiving import hash_digest

PRE = "agent:a1:action:"  # layout 1: the action hash is PRE + id
TL, REL, RW, GRID = PRE + "timeline", PRE + "relative_index", PRE + "rewards", PRE + "grid"
IPRE = "agent:a1:im:action:"
ITL = IPRE + "timeline"
SIM = "simulation:s1:actions"
SIM_SHAPES = ["simulation:", ":actions", "simulation:", ":actions:", "", "simulation:",
              ":actions:steps", "simulation:", ":actions:by_type", "simulation:",
              ":actions:", ":grid"]
# to_im's key shapes for agent a1 (ARGV 2..26): hash pre/suf, timeline, relative index,
# rewards, types pre/suf, targets pre/suf, sim_actions pre/suf, sim_step pre/mid/suf,
# sim_steps pre/suf, sim_by_type pre/suf, IM hash pre/suf, IM timeline, grid, sim_grid
# then the hash fields (ARGV 27..40): the STM hash's it reads, the IM hash's it writes
FIELDS = ["simulation_id", "step_number", "agent_id", "action_type", "reward",
          "action_target_id", "action_id", "simulation_id", "step_number", "agent_id",
          "action_type", "reward", "importance", "action_target_id"]
SHAPES = [PRE, "", TL, REL, RW, PRE + "types:", "", PRE + "targets:", "", *SIM_SHAPES[:9],
          IPRE, "", ITL, GRID, *SIM_SHAPES[9:], *FIELDS]
SIM_PARTS = ["agent:", ":action:", ""]
P = {f: layout(1).plain(f) for f in layout(1).patterns}  # '{name}' patterns


def _run(r: redis.Redis, script: Script, keys: list[str], *argv: object) -> object:
    return r.evalsha(script.sha, len(keys), *keys, *argv) if r.script_exists(script.sha)[0] \
        else r.eval(script.source, len(keys), *keys, *argv)


def _act(step: int, action_type: str = "move", agent: str = "a1", **kw: object) -> Action:
    return Action(agent_id=agent, simulation_id="s1", step_number=step,
                  action_type=action_type, **kw)


def _two(mem: agentmem.Memory) -> None:
    """a1-1-move (reward, target, position) and a1-2-eat, both of simulation s1."""
    mem.actions.add_many([
        _act(1, reward=0.123456789, action_target_id="a2", position=(1.0, 2.0)),
        _act(2, "eat", position=(3.0, 3.0))])


def test_shapes_are_the_documented_argv() -> None:
    assert Shapes(layout(1), "a1").argv() == SHAPES


# -- tiers/to_im.lua --------------------------------------------------------------------


def test_to_im_moves_from_every_stm_index_to_im(mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    out = _run(r, tiers.TO_IM, [], 3600, *SHAPES, 2, "a1-1-move", "0.75", "a1-9-move", "1")
    # moved, missing, refused, pinned, changed
    assert out == [[b"a1-1-move"], [b"a1-9-move"], [], [], []]
    aid = b"a1-1-move"
    assert r.hgetall(IPRE + "a1-1-move") == {
        b"action_id": aid, b"simulation_id": b"s1", b"step_number": b"1", b"agent_id": b"a1",
        b"action_type": b"move", b"reward": b"0.123457", b"importance": b"0.75",
        b"action_target_id": b"a2"}  # reward to 6 significant digits
    assert 3590 < r.ttl(IPRE + "a1-1-move") <= 3600
    assert r.zrange(ITL, 0, -1, withscores=True) == [(aid, 1.0)]
    assert not r.exists(PRE + "a1-1-move")
    for key in (TL, REL, GRID):
        assert r.zrange(key, 0, -1) == [b"a1-2-eat"]
    assert not r.exists(RW, PRE + "types:move", PRE + "targets:a2", SIM + ":1", SIM + ":1:grid")
    assert r.lrange(SIM, 0, -1) == [b"a1-2-eat"]
    assert r.zrange(SIM + ":steps", 0, -1) == [b"2"]  # the emptied step left
    assert r.hgetall(SIM + ":by_type") == {b"eat": b"1"}  # the emptied counter deleted
    assert r.exists(PRE + "a1-2-eat")


def test_to_im_refuses_an_action_whose_key_has_the_wrong_type(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.set(IPRE + "a1-1-move", "not a hash")
    before = {k: r.dump(k) for k in r.keys("*")}
    out = _run(r, tiers.TO_IM, [], 3600, *SHAPES, 1, "a1-1-move", "0.5")
    assert out == [[], [], [b"a1-1-move"], [], []]
    assert {k: r.dump(k) for k in r.keys("*")} == before  # nothing moved


def test_to_im_leaves_a_pinned_action_untouched(mem: agentmem.Memory, r: redis.Redis) -> None:
    """The pinned set (after the retired marks key) is checked in the same atomic step:
    a pinned id is reported, never moved (whole or cluster agent part)."""
    _two(mem)
    r.sadd("agent:a1:pinned", "a1-1-move")
    before = {k: r.dump(k) for k in r.keys("*")}
    for script in (tiers.TO_IM, tiers.TO_IM_AGENT):
        out = _run(r, script, [], 3600, *SHAPES, 2, "a1-1-move", "0.5", "a1-2-eat", "0.5",
                   "agent:a1:retired", "agent:a1:pinned")
        assert isinstance(out, list)
        assert out[0] == [b"a1-2-eat"]
        assert out[-2:] == [[b"a1-1-move"], []]  # pinned, changed
        assert r.exists(PRE + "a1-1-move")
        assert not r.exists(IPRE + "a1-1-move")
        assert r.zscore(TL, "a1-1-move") == 1
        r.flushall()
        for k, v in before.items():
            r.restore(k, 0, v)


def test_to_im_leaves_an_action_changed_since_it_was_read_untouched(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """After the kind of the types and targets keys, one digest per pair of the hash as
    the caller read it (``hash_digest`` of its HGETALL reply): a hash that differs now
    (updated since) is reported as changed and left whole in STM, one that is the same
    moves, whole or cluster agent part; a text of several bytes per character counts
    its bytes on both sides."""
    mem.actions.add_many([_act(1, reward=0.5, details={"note": "café ✓"}),
                          _act(2, "eat", details={"note": "naïve"})])
    seen = [hash_digest(r.hgetall(PRE + i)) for i in ("a1-1-move", "a1-2-eat")]
    r.hset(PRE + "a1-1-move", "reward", "0.9")  # an update after the read
    before = {k: r.dump(k) for k in r.keys("*")}
    for script in (tiers.TO_IM, tiers.TO_IM_AGENT):
        out = _run(r, script, [], 3600, *SHAPES, 2, "a1-1-move", "0.5", "a1-2-eat", "0.5",
                   "agent:a1:retired", "", "", *seen)
        assert isinstance(out, list)
        assert out[0] == [b"a1-2-eat"]
        assert out[-1] == [b"a1-1-move"]  # changed
        assert r.hget(PRE + "a1-1-move", "reward") == b"0.9"
        assert not r.exists(IPRE + "a1-1-move")
        assert r.zscore(TL, "a1-1-move") == 1
        assert r.exists(IPRE + "a1-2-eat")
        assert not r.exists(PRE + "a1-2-eat")
        r.flushall()
        for k, v in before.items():
            r.restore(k, 0, v)


# -- tiers/to_im_agent.lua and tiers/to_im_sim.lua --------------------------------------


def test_to_im_agent_moves_the_agent_part_and_reports_the_simulation_part(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    sim_before = {k: r.dump(k) for k in r.keys("simulation:*")}
    out = _run(r, tiers.TO_IM_AGENT, [], 0, *SHAPES, 1, "a1-1-move", "0.5")
    assert out == [[b"a1-1-move"], [], [], [b"s1", b"a1-1-move", b"1", b"move"], [], []]
    assert r.hget(IPRE + "a1-1-move", "importance") == b"0.5"
    assert r.ttl(IPRE + "a1-1-move") == -1  # im_ttl 0: no expiry
    assert not r.exists(PRE + "a1-1-move", PRE + "types:move", PRE + "targets:a2", RW)
    assert r.zrange(TL, 0, -1) == [b"a1-2-eat"]
    assert {k: r.dump(k) for k in r.keys("simulation:*")} == sim_before  # not its slot


def test_to_im_sim_removes_the_reported_ids_once(mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    out = _run(r, tiers.TO_IM_AGENT, [], 0, *SHAPES, 1, "a1-1-move", "0.5")
    report = [x.decode() for x in out[3]]
    assert _run(r, tiers.TO_IM_SIM, [], *SIM_SHAPES, *report) == []  # nothing refused
    assert r.lrange(SIM, 0, -1) == [b"a1-2-eat"]
    assert not r.exists(SIM + ":1", SIM + ":1:grid")
    assert r.zrange(SIM + ":steps", 0, -1) == [b"2"]
    assert r.hgetall(SIM + ":by_type") == {b"eat": b"1"}
    r.hset(SIM + ":by_type", "move", 3)
    assert _run(r, tiers.TO_IM_SIM, [], *SIM_SHAPES, *report) == []
    assert r.hget(SIM + ":by_type", "move") == b"3"  # the list no longer held it: no change


def test_to_im_sim_refuses_a_step_set_of_the_wrong_type(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.delete(SIM + ":1")
    r.set(SIM + ":1", "not a set")
    before = {k: r.dump(k) for k in r.keys("*")}
    out = _run(r, tiers.TO_IM_SIM, [], *SIM_SHAPES, "s1", "a1-1-move", "1", "move")
    assert out == [b"a1-1-move"]
    assert {k: r.dump(k) for k in r.keys("*")} == before


# -- tiers/evict_plan.lua ---------------------------------------------------------------


def _im(r: redis.Redis, rows: list[tuple[str, int, float]]) -> None:
    for aid, step, importance in rows:
        r.hset(IPRE + aid, mapping={"action_id": aid, "simulation_id": "s1",
                                    "step_number": step, "importance": importance})
        r.zadd(ITL, {aid: step})


def test_evict_plan_picks_the_lowest_ranked_unpinned_entries(r: redis.Redis) -> None:
    # rank = step + importance * weight (10): x1 1, x2 11, x3 3 (pinned), x4 4
    _im(r, [("x1", 1, 0.0), ("x2", 2, 0.9), ("x3", 3, 0.0), ("x4", 4, 0.0)])
    r.sadd("agent:a1:pinned", "x3")
    args = (IPRE, "", ITL, "agent:a1:pinned", "importance", "simulation_id")
    assert _run(r, tiers.EVICT_PLAN, [], *args, 1, "10.0") == [b"x1", b"s1", b"x4", b"s1"]
    assert _run(r, tiers.EVICT_PLAN, [], *args, 1, "0.0") == [b"x1", b"s1", b"x2", b"s1"]
    assert r.zcard(ITL) == 4  # a plan: nothing removed


def test_evict_plan_is_empty_within_capacity(r: redis.Redis) -> None:
    _im(r, [("x1", 1, 0.0), ("x2", 2, 0.0)])
    assert _run(r, tiers.EVICT_PLAN, [], IPRE, "", ITL, "agent:a1:pinned", "importance",
                "simulation_id", 2, "1.0") == []


# -- tiers/history.lua ------------------------------------------------------------------


def _history(r: redis.Redis, lo: str, hi: str, rev: str, limit: int) -> list[tuple[bytes, bytes]]:
    out = _run(r, tiers.HISTORY, [], TL, PRE, "", ITL, IPRE, "", lo, hi, rev, limit)
    assert isinstance(out, list)
    return [(out[i], dict(zip(out[i + 1][0::2], out[i + 1][1::2], strict=True))[b"action_id"])
            for i in range(0, len(out), 2)]


def test_history_merges_stm_and_im_by_step(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i) for i in range(1, 5)])
    Tiers(mem).transition("a1", ["a1-1-move", "a1-3-move"])
    assert _history(r, "-inf", "+inf", "0", -1) == [
        (b"i", b"a1-1-move"), (b"s", b"a1-2-move"), (b"i", b"a1-3-move"), (b"s", b"a1-4-move")]
    assert _history(r, "2", "4", "1", 2) == [(b"s", b"a1-4-move"), (b"i", b"a1-3-move")]


def test_history_skips_ids_whose_hash_is_gone(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(i) for i in range(1, 4)])
    r.delete(PRE + "a1-2-move")
    assert _history(r, "-inf", "+inf", "0", -1) == [(b"s", b"a1-1-move"), (b"s", b"a1-3-move")]


# -- integrity/*.lua --------------------------------------------------------------------

# the hash field names the index checks read (layout 1 and 2: the fields' own names)
FIELDS = ["simulation_id", "step_number", "action_type", "action_target_id", "reward",
          "position_x", "position_y"]


def test_integrity_orphans_reports_then_removes_index_members_without_a_hash(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.zadd(TL, {"a1-7-move": 7})
    args = (TL, "0", 100, "z", "a", PRE, "", "", 0)
    assert _run(r, integrity.ORPHANS, [], "check", *args) == [b"0", b"a1-7-move"]
    assert r.zscore(TL, "a1-7-move") == 7.0  # check only reports
    assert _run(r, integrity.ORPHANS, [], "fix", *args) == [b"0", b"a1-7-move"]
    assert r.zrange(TL, 0, -1) == [b"a1-1-move", b"a1-2-eat"]


def test_integrity_orphans_of_a_simulation_set_with_an_agent_filter(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.sadd(SIM + ":1", "a1-1-ghost", "b-1-ghost")
    args = (SIM + ":1", "0", 100, "s", "s", *SIM_PARTS)
    out = _run(r, integrity.ORPHANS, [], "check", *args, 0)
    assert out[0] == b"0"
    assert sorted(out[1:]) == [b"a1-1-ghost", b"b-1-ghost"]
    assert _run(r, integrity.ORPHANS, [], "fix", *args, 1, "b") == [b"0", b"b-1-ghost"]
    assert r.smembers(SIM + ":1") == {b"a1-1-move", b"a1-1-ghost"}


def test_integrity_list_reports_then_removes_list_entries_without_a_hash(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.linsert(SIM, "BEFORE", "a1-2-eat", "a1-5-ghost")
    args = (SIM, 0, 100, *SIM_PARTS, 0)
    assert _run(r, integrity.LIST, [], "check", *args) == [
        3, [b"a1-5-ghost"], [b"a1-1-move", b"a1-2-eat"]]
    assert r.llen(SIM) == 3
    _run(r, integrity.LIST, [], "fix", *args)
    assert r.lrange(SIM, 0, -1) == [b"a1-1-move", b"a1-2-eat"]


def test_integrity_steps_reports_then_removes_steps_without_a_live_action(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.zadd(SIM + ":steps", {"9": 9})  # no step set at all
    r.delete(PRE + "a1-2-eat")  # step 2's set holds only a gone action
    args = (SIM + ":steps", "0", 100, SIM + ":", "", *SIM_PARTS)
    out = _run(r, integrity.STEPS, [], "check", *args)
    assert out[0] == b"0"
    assert sorted(out[1:]) == [b"2", b"9"]
    assert r.zcard(SIM + ":steps") == 3
    _run(r, integrity.STEPS, [], "fix", *args)
    assert r.zrange(SIM + ":steps", 0, -1) == [b"1"]


def test_integrity_actions_reports_then_restores_missing_index_entries(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    code = r.zscore(GRID, "a1-1-move")
    r.zrem(TL, "a1-1-move")
    r.srem(PRE + "types:move", "a1-1-move")
    r.zadd(GRID, {"a1-1-move": 1})  # a wrong cell counts as missing
    pats = [P[f] for f in ("action", "timeline", "types", "targets", "rewards", "sim_step",
                           "sim_steps", "grid", "sim_grid")]
    args = (*pats, "1.0", "s", *FIELDS, "a1", "a1-1-move", "a1", "a1-2-eat", "a1", "a1-8-gone")
    assert _run(r, integrity.ACTIONS, [], "check", *args) == [
        b"a1-1-move", b"a1", b"s1", b"move", b"1", b"timeline,types,grid",
        b"a1-2-eat", b"a1", b"s1", b"eat", b"2", b""]  # no row for a hash that is gone
    _run(r, integrity.ACTIONS, [], "fix", *args)
    assert r.zscore(TL, "a1-1-move") == 1.0
    assert r.sismember(PRE + "types:move", "a1-1-move")
    assert r.zscore(GRID, "a1-1-move") == code
    assert _run(r, integrity.ACTIONS, [], "check", *args)[5] == b""


def test_integrity_listed_reports_then_appends_actions_missing_from_their_list(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    r.lrem(SIM, 0, "a1-1-move")
    args = (P["action"], P["sim_actions"], "simulation_id", "a1", "a1-1-move", "a1",
            "a1-2-eat", "a1", "a1-8-x")
    assert _run(r, integrity.LISTED, [], "check", *args) == [b"a1", b"a1-1-move"]
    assert r.lrange(SIM, 0, -1) == [b"a1-2-eat"]
    _run(r, integrity.LISTED, [], "fix", *args)
    assert r.lrange(SIM, 0, -1) == [b"a1-2-eat", b"a1-1-move"]


def test_integrity_im_reports_then_adds_im_hashes_missing_from_the_im_timeline(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    _two(mem)
    Tiers(mem).transition("a1", ["a1-1-move", "a1-2-eat"])
    r.zrem(ITL, "a1-2-eat")
    args = (P["im_action"], P["im_timeline"], "step_number", "a1", "a1-1-move", "a1",
            "a1-2-eat", "a1", "x")
    assert _run(r, integrity.IM, [], "check", *args) == [b"a1", b"a1-2-eat"]
    assert r.zcard(ITL) == 1
    _run(r, integrity.IM, [], "fix", *args)
    assert r.zrange(ITL, 0, -1, withscores=True) == [(b"a1-1-move", 1.0), (b"a1-2-eat", 2.0)]


def test_integrity_counts_counts_compares_and_fixes_the_type_counters(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([_act(1), _act(2), _act(3, "eat")])
    r.delete(PRE + "a1-3-eat")  # its list entry no longer counts
    r.hset(SIM + ":by_type", mapping={"move": 5, "ghost": 1})
    args = (SIM, 0, -1, "s1", SIM + ":by_type", *SIM_PARTS, "simulation_id", "action_type")
    out = _run(r, integrity.COUNTS, [], "count", *args, "rest", 4)
    assert dict(zip(out[0::2], out[1::2], strict=True)) == {b"move": b"2", b"rest": b"4"}
    out = _run(r, integrity.COUNTS, [], "check", *args)
    rows = {tuple(out[i:i + 3]) for i in range(0, len(out), 3)}
    assert rows == {(b"move", b"5", b"2"), (b"eat", b"1", b"0"), (b"ghost", b"1", b"0")}
    assert r.hget(SIM + ":by_type", "move") == b"5"
    _run(r, integrity.COUNTS, [], "fix", *args)
    assert r.hgetall(SIM + ":by_type") == {b"move": b"2"}
    assert _run(r, integrity.COUNTS, [], "check", *args) == []


def test_integrity_scripts_read_the_hash_fields_they_are_given(
        connect: Callable[..., agentmem.Memory], r: redis.Redis) -> None:
    """Layout 3 keeps the fields under short names (s, n, t, ...): the scripts read the
    names passed in ARGV (the layout's ``codec.wire``), never the fields' own names."""
    mem = connect(layout_version=3)
    lay = layout(3)
    p3 = {f: lay.plain(f) for f in lay.patterns}
    wire, im_wire = lay.action.codec.wire, lay.im_action.codec.wire
    short = [wire(n) for n in FIELDS]
    assert short == ["s", "n", "t", "g", "r", "x", "y"]
    _two(mem)
    mem.im_actions.add(agentmem.IMAction(action_id="a1-3-eat", agent_id="a1",
                                         simulation_id="s1", step_number=3,
                                         action_type="eat", importance=0.5))
    tl, sim = lay.key("timeline", agent_id="a1"), lay.key("sim_actions", simulation_id="s1")
    r.zrem(tl, "a1-1-move")
    r.zrem(lay.key("im_timeline", agent_id="a1"), "a1-3-eat")
    r.lrem(sim, 0, "a1-1-move")
    pats = [p3[f] for f in ("action", "timeline", "types", "targets", "rewards", "sim_step",
                            "sim_steps", "grid", "sim_grid")]
    pair = ("a1", "a1-1-move")
    assert _run(r, integrity.ACTIONS, [], "check", *pats, "1.0", "s", *FIELDS, *pair) == []
    assert _run(r, integrity.ACTIONS, [], "fix", *pats, "1.0", "s", *short, *pair) == [
        b"a1-1-move", b"a1", b"s1", b"move", b"1", b"timeline"]
    assert r.zscore(tl, "a1-1-move") == 1.0
    r.zrem(tl, "a1-1-move")  # the cluster's agent-level check, in the agent's slot
    apats = [p3[f] for f in ("action", "timeline", "types", "targets", "rewards", "grid")]
    stamp = [*FIELDS, "stored_at"]
    assert _run(r, cluster.AGENT_CHECK, [], "check", *apats, "1.0", "s", *stamp, *pair) == []
    row = _run(r, cluster.AGENT_CHECK, [], "fix", *apats, "1.0", "s", *short, wire("stored_at"),
               *pair)
    assert row[:4] == [b"a1-1-move", b"s1", b"move", b"1"]
    assert float(row[4]) < 1e9  # its age: stored_at was read
    assert row[5] == b"timeline"
    assert float(row[6]) == r.zscore(lay.key("grid", agent_id="a1"), "a1-1-move")  # its code
    assert r.zscore(tl, "a1-1-move") == 1.0
    listed = (p3["action"], p3["sim_actions"])
    assert _run(r, integrity.LISTED, [], "check", *listed, "simulation_id", *pair) == []
    assert _run(r, integrity.LISTED, [], "fix", *listed, "s", *pair) == [*map(str.encode, pair)]
    assert r.lrange(sim, 0, -1) == [b"a1-2-eat", b"a1-1-move"]
    im = (p3["im_action"], p3["im_timeline"])
    assert _run(r, integrity.IM, [], "check", *im, "step_number", "a1", "a1-3-eat") == []
    assert _run(r, integrity.IM, [], "fix", *im, im_wire("step_number"), "a1", "a1-3-eat") == [
        b"a1", b"a1-3-eat"]
    assert r.zscore(lay.key("im_timeline", agent_id="a1"), "a1-3-eat") == 3.0
    prefix, middle = "agent:{", "}:action:"
    counts = (sim, 0, -1, "s1", lay.key("sim_by_type", simulation_id="s1"), prefix, middle, "")
    out = _run(r, integrity.COUNTS, [], "count", *counts, "simulation_id", "action_type")
    assert out == []
    out = _run(r, integrity.COUNTS, [], "count", *counts, wire("simulation_id"),
               wire("action_type"))
    assert dict(zip(out[0::2], out[1::2], strict=True)) == {b"move": b"1", b"eat": b"1"}
