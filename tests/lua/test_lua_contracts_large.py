"""The large Lua scripts called directly with the KEYS and ARGV their header states, on a
real server (Redis 7 and Valkey 9): the write, the tier move, the integrity checks,
the radius search, the sequence and history reads, the fetch scripts, the outbox
and the retired marks. Data is set up through agentmem (or raw commands where the
test plants an inconsistency); each reply and each write is checked against what
the header says. (Small scripts: tests/lua/test_lua_contracts.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.lua import dualwrite, integrity, radius, scripts, search, tiers
from agentmem.lua.loader import Script
from agentmem.plans.grid import code as grid_code
from agentmem.plans.keyspace import layout
from agentmem.plans.radius import Circle, Filters, near_call
from agentmem.tiers.shapes import Shapes

LAY = layout(1)
P = {f: LAY.plain(f) for f in LAY.patterns}


def run(r: redis.Redis, script: Script, *argv: Any, keys: tuple[str, ...] = ()) -> Any:
    if not r.script_exists(script.sha)[0]:
        r.script_load(script.source)
    return r.evalsha(script.sha, len(keys), *keys, *argv)


def act(step: int, kind: str = "move", agent: str = "a1", sim: str = "s1",
        **kw: Any) -> Action:
    return Action(agent_id=agent, simulation_id=sim, step_number=step, action_type=kind, **kw)


def hashes(reply: list[Any]) -> list[dict[bytes, bytes]]:
    return [dict(zip(h[::2], h[1::2], strict=True)) for h in reply]


# -- the write -----------------------------------------------------------------------------


def _write_call(mem: agentmem.Memory, records: list[Action]) -> tuple[Any, ...]:
    writer = mem.actions.writer
    call, _ = writer.batch(writer.prepare_all(records))
    assert call.args[0] == "EVALSHA"
    return call.args[3:]  # numkeys is 0: the ARGV


def test_write_stores_the_hash_and_every_index(mem: agentmem.Memory, r: redis.Redis) -> None:
    argv = _write_call(mem, [act(3, reward=0.5, action_target_id="b", position=(1.0, 2.0))])
    reply = run(r, scripts.WRITE, *argv)
    assert reply[0]  # the write time (the stamp field is declared)
    assert reply[1:] == []  # no id changed
    h = r.hgetall("agent:a1:action:a1-3-move")
    assert h[b"action_id"] == b"a1-3-move"
    assert h[b"step_number"] == b"3"
    assert r.zscore("agent:a1:action:timeline", "a1-3-move") == 3
    assert r.sismember("agent:a1:action:types:move", "a1-3-move")
    assert r.sismember("agent:a1:action:targets:b", "a1-3-move")
    assert r.zscore("agent:a1:action:rewards", "a1-3-move") == 0.5
    assert r.lrange("simulation:s1:actions", 0, -1) == [b"a1-3-move"]
    assert r.smembers("simulation:s1:actions:3") == {b"a1-3-move"}
    assert r.hget("simulation:s1:actions:by_type", "move") == b"1"
    assert r.zscore("agent:a1:action:grid", "a1-3-move") == grid_code(1.0, 2.0, 1.0)
    assert r.ttl("agent:a1:action:a1-3-move") > 0


def test_write_renumbers_an_id_taken_on_the_server(mem: agentmem.Memory,
                                                   r: redis.Redis) -> None:
    mem.actions.add(act(3))
    reply = run(r, scripts.WRITE, *_write_call(mem, [act(3)]))
    assert reply[1:] == [1, b"a1-3-move.1"]  # position 1 of the call got .1
    assert r.exists("agent:a1:action:a1-3-move.1")


def test_write_refuses_a_key_of_the_wrong_type_and_writes_nothing(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    r.set("agent:a1:action:types:move", "not a set")
    reply = run(r, scripts.WRITE, *_write_call(mem, [act(3)]))
    assert reply == [b"\x00WRONGTYPE", b"agent:a1:action:types:move"]
    assert not r.exists("agent:a1:action:a1-3-move")
    assert not r.exists("agent:a1:action:timeline")


@pytest.mark.parametrize(("key", "plant"), [
    ("agent:a1:action:relative_index", lambda r, k: r.sadd(k, "x")),  # a set for a zset
    ("agent:a1:action:rewards", lambda r, k: r.set(k, "not a zset")),
    ("simulation:s1:actions", lambda r, k: r.zadd(k, {"x": 1})),  # a zset for a list
    ("agent:a1:retired", lambda r, k: r.set(k, "not a hash")),  # read by the mark's HGET
    ("agent:a1:retired", lambda r, k: r.sadd(k, "x")),
])
def test_write_refuses_each_kind_of_key_of_the_wrong_type(
        mem: agentmem.Memory, r: redis.Redis, key: str, plant: Any) -> None:
    plant(r, key)
    reply = run(r, scripts.WRITE, *_write_call(mem, [act(3, reward=0.5), act(4, reward=0.1)]))
    assert reply == [b"\x00WRONGTYPE", key.encode()]
    assert not r.exists("agent:a1:action:a1-3-move", "agent:a1:action:a1-4-move")
    assert not r.exists("agent:a1:action:timeline", "simulation:s1:actions:by_type")
    assert r.type(key) != b"none"  # the planted key is left as it was


def test_write_refuses_a_given_id_that_exists(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add(act(3, action_id="a1-3-x"))
    reply = run(r, scripts.WRITE, *_write_call(mem, [act(4), act(3, action_id="a1-3-x")]))
    assert reply == [b"\x00EXISTS", 2]  # the record at position 2; nothing written
    assert not r.exists("agent:a1:action:a1-4-move")


def test_write_gives_an_r_id_at_or_below_the_retired_mark(mem: agentmem.Memory,
                                                          r: redis.Redis) -> None:
    r.hset("agent:a1:retired", "s1", 5)
    reply = run(r, scripts.WRITE, *_write_call(mem, [act(5), act(6)]))
    assert reply[1:] == [1, b"a1-5-move.r1"]
    assert r.hget("agent:a1:retired", ":seq") == b"1"
    assert r.exists("agent:a1:action:a1-5-move.r1", "agent:a1:action:a1-6-move") == 2
    assert r.zscore("agent:a1:action:timeline", "a1-5-move.r1") == 5


def test_write_appends_to_an_outbox_group(mem: agentmem.Memory, r: redis.Redis) -> None:
    repo = mem.actions.with_outbox("ob", "reg", "ob:lease", 5000)
    call, _ = repo.writer.batch(repo.writer.prepare_all([act(1), act(2)]))
    run(r, scripts.WRITE, *call.args[3:])
    assert r.lrange("ob", 0, -1) == [b"agent:a1:action:a1-1-move", b"agent:a1:action:a1-2-move"]
    assert r.smembers("reg") == {b"ob"}
    assert 0 < r.pttl("ob:lease") <= 5000


# -- the tier move ---------------------------------------------------------------------------


def _to_im_argv(agent: str, moves: list[tuple[str, str]], im_ttl: int = 100) -> list[Any]:
    sh = Shapes(LAY, agent)
    argv: list[Any] = [im_ttl, *sh.argv(), len(moves)]
    for aid, imp in moves:
        argv += (aid, imp)
    return [*argv, sh.retired]


def test_to_im_moves_out_of_every_stm_index(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(1, reward=0.25, action_target_id="b"), act(2)])
    moved, missing, refused, pinned, changed = run(r, tiers.TO_IM, *_to_im_argv(
        "a1", [("a1-1-move", "0.75"), ("a1-9-gone", "0.1")]))
    assert (pinned, changed) == ([], [])
    assert (moved, missing, refused) == ([b"a1-1-move"], [b"a1-9-gone"], [])
    assert not r.exists("agent:a1:action:a1-1-move")
    assert r.zrange("agent:a1:action:timeline", 0, -1) == [b"a1-2-move"]
    assert not r.sismember("agent:a1:action:targets:b", "a1-1-move")
    assert r.lrange("simulation:s1:actions", 0, -1) == [b"a1-2-move"]
    im = r.hgetall("agent:a1:im:action:a1-1-move")
    assert im[b"importance"] == b"0.75"
    assert im[b"reward"] == b"0.25"
    assert r.zscore("agent:a1:im:action:timeline", "a1-1-move") == 1
    assert r.hget("agent:a1:retired", "s1") == b"1"  # the mark rises with the move
    assert 0 < r.ttl("agent:a1:im:action:a1-1-move") <= 100


def test_to_im_refuses_when_an_index_has_the_wrong_type(mem: agentmem.Memory,
                                                        r: redis.Redis) -> None:
    mem.actions.add(act(1))
    r.delete("agent:a1:action:types:move")
    r.set("agent:a1:action:types:move", "x")
    moved, missing, refused, _, _ = run(r, tiers.TO_IM, *_to_im_argv("a1", [("a1-1-move", "1")]))
    assert (moved, missing, refused) == ([], [], [b"a1-1-move"])
    assert r.exists("agent:a1:action:a1-1-move")  # left in STM, whole
    assert not r.exists("agent:a1:retired")


def test_history_orders_stm_and_im_by_step(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(s) for s in range(4)])
    run(r, tiers.TO_IM, *_to_im_argv("a1", [("a1-0-move", "1"), ("a1-2-move", "1")]))
    reply = run(r, tiers.HISTORY, P["timeline"].format(agent_id="a1"), "agent:a1:action:", "",
                P["im_timeline"].format(agent_id="a1"), "agent:a1:im:action:", "",
                "-inf", "+inf", "0", -1)
    tiers_, rows = reply[::2], hashes(reply[1::2])
    assert tiers_ == [b"i", b"s", b"i", b"s"]
    assert [h[b"step_number"] for h in rows] == [b"0", b"1", b"2", b"3"]


# -- integrity -------------------------------------------------------------------------------


def _patterns(*families: str) -> list[str]:
    return [P[f] for f in families]


FIELDS = ["simulation_id", "step_number", "action_type", "action_target_id", "reward",
          "position_x", "position_y"]  # the hash field names ACTIONS reads (layout 1)


def test_integrity_actions_reports_and_fixes_missing_entries(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add(act(2, action_target_id="b"))
    r.srem("agent:a1:action:types:move", "a1-2-move")
    r.zrem("simulation:s1:actions:steps", "2")
    pats = _patterns("action", "timeline", "types", "targets", "rewards", "sim_step",
                     "sim_steps", "grid", "sim_grid")
    reply = run(r, integrity.ACTIONS, "check", *pats, "1.0", "s", *FIELDS, "a1", "a1-2-move")
    assert reply[:5] == [b"a1-2-move", b"a1", b"s1", b"move", b"2"]
    assert set(reply[5].split(b",")) == {b"types", b"sim_steps"}
    assert not r.sismember("agent:a1:action:types:move", "a1-2-move")  # check: no write
    run(r, integrity.ACTIONS, "fix", *pats, "1.0", "s", *FIELDS, "a1", "a1-2-move")
    assert r.sismember("agent:a1:action:types:move", "a1-2-move")
    assert r.zscore("simulation:s1:actions:steps", "2") == 2


def test_integrity_orphans_finds_index_entries_without_a_hash(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(1), act(2)])
    r.delete("agent:a1:action:a1-1-move")
    key = "agent:a1:action:timeline"
    reply = run(r, integrity.ORPHANS, "check", key, "0", 100, "z", "a", "agent:a1:action:", "",
                "", 0)
    assert reply[0] == b"0"
    assert reply[1:] == [b"a1-1-move"]
    run(r, integrity.ORPHANS, "fix", key, "0", 100, "z", "a", "agent:a1:action:", "", "", 0)
    assert r.zrange(key, 0, -1) == [b"a1-2-move"]


def test_integrity_list_finds_list_entries_without_a_hash(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(1), act(2)])
    r.delete("agent:a1:action:a1-2-move")
    reply = run(r, integrity.LIST, "check", "simulation:s1:actions", 0, 100, "agent:",
                ":action:", "", 0)
    assert reply[0] == 2
    assert reply[1] == [b"a1-2-move"]
    assert reply[2] == [b"a1-1-move"]


def test_integrity_counts_compares_the_type_counters(mem: agentmem.Memory,
                                                     r: redis.Redis) -> None:
    mem.actions.add_many([act(1), act(2), act(3, "eat")])
    r.hset("simulation:s1:actions:by_type", "move", 7)
    reply = run(r, integrity.COUNTS, "count", "simulation:s1:actions", 0, -1, "s1",
                "simulation:s1:actions:by_type", "agent:", ":action:", "", "simulation_id",
                "action_type")
    got = dict(zip(reply[::2], reply[1::2], strict=True))
    assert got == {b"move": b"2", b"eat": b"1"}  # the true counts, not the stored 7
    wrong = run(r, integrity.COUNTS, "check", "simulation:s1:actions", 0, -1, "s1",
                "simulation:s1:actions:by_type", "agent:", ":action:", "", "simulation_id",
                "action_type")
    assert wrong == [b"move", b"7", b"2"]


def test_integrity_im_and_listed(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.im_actions.add(agentmem.IMAction(action_id="a1-1-move", agent_id="a1",
                                         simulation_id="s1", step_number=1,
                                         action_type="move", importance=0.5))
    r.zrem("agent:a1:im:action:timeline", "a1-1-move")
    reply = run(r, integrity.IM, "check", P["im_action"], P["im_timeline"], "step_number", "a1",
                "a1-1-move")
    assert reply == [b"a1", b"a1-1-move"]
    run(r, integrity.IM, "fix", P["im_action"], P["im_timeline"], "step_number", "a1",
        "a1-1-move")
    assert r.zscore("agent:a1:im:action:timeline", "a1-1-move") == 1
    mem.actions.add(act(4))
    r.delete("simulation:s1:actions")
    reply = run(r, integrity.LISTED, "check", P["action"], P["sim_actions"], "simulation_id",
                "a1", "a1-4-move")
    assert reply == [b"a1", b"a1-4-move"]


def test_integrity_steps_finds_steps_without_live_actions(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(1), act(2)])
    r.delete("agent:a1:action:a1-1-move")
    reply = run(r, integrity.STEPS, "check", "simulation:s1:actions:steps", "0", 100,
                "simulation:s1:actions:", "", "agent:", ":action:", "")
    assert reply[0] == b"0"
    assert reply[1:] == [b"1"]


# -- reads -----------------------------------------------------------------------------------


def test_near_returns_the_actions_within_the_radius_nearest_first(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(s, position=(float(s), 0.0)) for s in range(6)])
    query = mem.actions.near("a1", 2.2, 0.0, 1.5)
    assert [n.record.step_number for n in query] == [2, 3, 1]
    circle = Circle.of(2.2, 0.0, 1.5, 1.0)
    call = near_call(circle, mode="r", shape=("agent:a1:action:", "", ""),
                     fields=("position_x", "position_y"), limit=None, filters=Filters(),
                     keys=[("agent:a1:action:grid", "")])
    reply = run(r, radius.NEAR, *call.args[3:])
    d2 = [float(x) for x in reply[::2]]
    assert d2 == sorted(d2)
    assert [h[b"step_number"] for h in hashes(reply[1::2])] == [b"2", b"3", b"1"]


def test_sequence_lists_both_tiers(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(s, reward=float(s)) for s in range(3)])
    run(r, tiers.TO_IM, *_to_im_argv("a1", [("a1-0-move", "1")]))
    reply = run(r, search.SEQUENCE, "-inf", "+inf", -1, "0",
                "s", P["timeline"].format(agent_id="a1"), "agent:a1:action:", "",
                "action_type", "reward",
                "i", P["im_timeline"].format(agent_id="a1"), "agent:a1:im:action:", "",
                "action_type", "reward")
    rows = [reply[i:i + 5] for i in range(0, len(reply), 5)]
    assert sorted((t, i) for t, i, *_ in rows) == [
        (b"i", b"a1-0-move"), (b"s", b"a1-1-move"), (b"s", b"a1-2-move")]


def test_fetch_scripts(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(s, "move" if s % 2 else "eat", reward=s / 10) for s in range(6)])
    tl = "agent:a1:action:timeline"
    newest = run(r, scripts.ZRANGE_FETCH, tl, "agent:a1:action:", "", "rank", "0", "1", "1", 2)
    assert [h[b"step_number"] for h in hashes(newest)] == [b"5", b"4"]
    rel = run(r, scripts.RELATIVE_FETCH, "agent:a1:action:relative_index", tl,
              "agent:a1:action:", "", 1)
    assert hashes(rel)[0][b"step_number"] == b"4"
    moves = run(r, scripts.SET_SORTED_FETCH, "agent:a1:action:types:move", tl,
                "agent:a1:action:", "", "1", 2, "", "0")
    assert [h[b"step_number"] for h in hashes(moves)] == [b"5", b"3"]
    sim = run(r, scripts.SIM_FETCH, "simulation:s1:actions", "list", 0, -1, "agent:",
              ":action:", "", -1, "", "s1")
    assert len(sim) == 6
    assert run(r, scripts.SIM_FETCH, "simulation:s1:actions", "list", 0, -1, "agent:",
               ":action:", "", -1, "", "other") == []  # hashes of another simulation


# -- the outbox and the retired marks -------------------------------------------------------


def test_outbox_ack_drops_only_what_was_read(r: redis.Redis) -> None:
    r.rpush("ob", "k1", "k2", "k3")
    r.sadd("reg", "ob")
    assert run(r, dualwrite.OUTBOX_ACK, "", "", "k2", keys=("ob", "reg")) == 0  # not the head
    assert run(r, dualwrite.OUTBOX_ACK, "", "", "k1", "k2", keys=("ob", "reg")) == 1
    assert r.lrange("ob", 0, -1) == [b"k3"]
    assert run(r, dualwrite.OUTBOX_ACK, "", "", "k3", keys=("ob", "reg")) == 1
    assert not r.exists("ob")
    assert not r.sismember("reg", "ob")  # emptied: it leaves the registry
    r.rpush("ob", "k4")
    r.set("lock", "other")
    assert run(r, dualwrite.OUTBOX_ACK, "mine", 1000, "k4", keys=("ob", "reg", "lock")) == 0
    r.set("lock", "mine")
    assert run(r, dualwrite.OUTBOX_ACK, "mine", 1000, "k4", keys=("ob", "reg", "lock")) == 1
    assert 0 < r.pttl("lock") <= 1000  # renewed


def test_outbox_claim_and_unlock(r: redis.Redis) -> None:
    keys = ("ob", "ob:claimed", "reg", "ob:lease")
    r.rpush("ob", "k1")
    r.sadd("reg", "ob")
    r.set("ob:lease", "1")
    assert run(r, dualwrite.OUTBOX_CLAIM, "0", keys=keys) == 0  # alive
    assert run(r, dualwrite.OUTBOX_CLAIM, "1", keys=keys) == 1  # forced
    assert r.lrange("ob:claimed", 0, -1) == [b"k1"]
    assert r.smembers("reg") == {b"ob:claimed"}
    r.rpush("ob", "k2")
    assert run(r, dualwrite.OUTBOX_CLAIM, "1", keys=keys) == -1  # drain the claimed first
    r.set("lock", "t1")
    assert run(r, dualwrite.OUTBOX_UNLOCK, "t2", keys=("lock",)) == 0
    assert run(r, dualwrite.OUTBOX_UNLOCK, "t1", keys=("lock",)) == 1
    assert not r.exists("lock")


def test_retired_seed_only_raises(r: redis.Redis) -> None:
    r.hset("agent:a1:retired", mapping={"s1": 9, ":seq": 4})
    assert run(r, dualwrite.RETIRED_SEED, 2, "s1", 5, "s2", 7,
               keys=("agent:a1:retired",)) == 1
    assert r.hgetall("agent:a1:retired") == {b"s1": b"9", b":seq": b"4", b"s2": b"7"}
    run(r, dualwrite.RETIRED_SEED, 6, "s1", 12, keys=("agent:a1:retired",))
    assert r.hgetall("agent:a1:retired") == {b"s1": b"12", b":seq": b"6", b"s2": b"7"}


@pytest.mark.parametrize("name", ["TO_IM_AGENT", "TO_IM_SIM"])
def test_the_cluster_parts_of_the_move_are_declared(name: str) -> None:
    """The two-part move runs on a cluster (tests/cluster/test_cluster.py moves and
    repairs through it); here: both parts exist under the names the tiers use."""
    assert isinstance(getattr(tiers, name), Script)
