"""Check and repair (agentmem.integrity.checker) against real Redis and Valkey servers.

Orphans are made for real: actions written with a 1-second TTL expire (one sleep per
server kind, in the one test that needs it), and keys are changed behind the library's
back (DEL, SREM, ZREM, LREM, HSET). Every defect made is counted exactly.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from _support import act
from test_layout2 import content

import agentmem
from agentmem import IMAction
from agentmem.errors import InvalidInput
from agentmem.integrity import check, checker, repair
from agentmem.plans import keyspace

ORPHANS = {"timeline": 5, "relative_index": 5, "types": 5, "targets": 1, "rewards": 2,
           "sim_actions": 5, "sim_step": 5, "sim_steps": 2, "im_timeline": 1}
MISSING = {"types": 1, "timeline": 1, "rewards": 1, "targets": 1, "sim_actions": 1,
           "sim_step": 1, "sim_steps": 1, "im_timeline": 1}


def live_actions(sim: str = "s1", agents: tuple[str, ...] = ("a1", "a2"), steps: int = 6
                 ) -> list[agentmem.Action]:
    return [act(a, s, "move" if s % 2 == 0 else "eat", sim=sim,
                action_target_id="t1" if s % 3 == 0 else None,
                reward=s / 10 if s % 2 == 0 else None)
            for a in agents for s in range(steps)]


def im(agent: str, step: int, kind: str) -> IMAction:
    return IMAction(action_id=f"{agent}-{step}-{kind}", agent_id=agent, simulation_id="s1",
                    step_number=step, action_type=kind, reward=0.5, importance=0.3)


def snapshot(r: redis.Redis) -> dict[bytes, Any]:
    """Every key's full content (for small test stores)."""
    out: dict[bytes, Any] = {}
    for key in r.scan_iter(count=1000):
        t = r.type(key)
        out[key] = (t, r.hgetall(key) if t == b"hash" else r.zrange(key, 0, -1, withscores=True)
                    if t == b"zset" else sorted(r.smembers(key)) if t == b"set"
                    else r.lrange(key, 0, -1))
    return out


def true_counts(mem: agentmem.Memory, sim: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in mem.actions.simulation_actions(sim):
        counts[a.action_type] = counts.get(a.action_type, 0) + 1
    return counts


def test_every_defect_found_exactly_then_repaired(server: Any, r: redis.Redis,
                                                  mem: agentmem.Memory) -> None:
    short = agentmem.connect(server.url, ttl=1)
    written = time.monotonic()
    short.actions.add_many([  # expire: 4 of each orphan family but targets (1), rewards (2)
        act("e1", 100, "move", sim="s1", action_target_id="t9", reward=1.0),
        act("e1", 101, "eat", sim="s1"),
        act("e2", 101, "eat", sim="s1", reward=0.5),
        act("e2", 0, "move", sim="s1"),  # step 0 keeps live actions: no sim_steps orphan
    ])
    short.close()
    mem.actions.add_many(live_actions() + live_actions("s2", ("b1",)))
    mem.im_actions.add_many([im("a1", 50, "move"), im("a1", 51, "eat"), im("a1", 52, "move")])
    assert check(mem).clean

    r.delete("agent:a1:action:a1-1-eat")                        # 5th orphan of 5 families
    r.srem("agent:a2:action:types:move", "a2-2-move")           # missing types
    r.zrem("agent:a2:action:timeline", "a2-4-move")             # missing timeline
    r.zrem("agent:a2:action:rewards", "a2-4-move")              # missing rewards
    r.srem("agent:a1:action:targets:t1", "a1-0-move")           # missing targets
    r.lrem("simulation:s1:actions", 0, "a1-2-move")             # missing sim_actions
    r.srem("simulation:s1:actions:3", "a1-3-eat")               # missing sim_step
    r.zrem("simulation:s1:actions:steps", "5")                  # missing sim_steps (2 actions)
    r.hset("simulation:s1:actions:by_type", mapping={"move": 999, "fly": 3})
    r.delete("agent:a1:im:action:a1-51-eat")                    # orphan im_timeline
    r.zrem("agent:a1:im:action:timeline", "a1-52-move")         # missing im_timeline
    time.sleep(max(0.0, written + 1.3 - time.monotonic()))
    for key in ("agent:e1:action:e1-100-move", "agent:e1:action:e1-101-eat",
                "agent:e2:action:e2-101-eat", "agent:e2:action:e2-0-move"):
        assert not r.exists(key)
    expected_counts = true_counts(mem, "s1")  # the list lacks a1-2-move: add it back
    expected_counts["move"] += 1

    found = check(mem, batch=3)
    assert (found.orphans, found.missing, found.counters) == (ORPHANS, MISSING,
                                                              {"sim_by_type": 3})
    assert not found.clean
    assert not found.repaired
    assert found.total == 42
    assert "agent:a2:action:a2-2-move" in found.samples["missing.types"]
    assert "simulation:s1:actions:steps 5" in found.samples["missing.sim_steps"]
    assert "check found 42 problem(s)" in str(found)
    assert check(mem, batch=1000).orphans == ORPHANS  # batch size does not change results

    fixed = repair(mem, batch=3)
    assert (fixed.orphans, fixed.missing, fixed.counters) == (ORPHANS, MISSING,
                                                              {"sim_by_type": 3})
    assert fixed.repaired
    assert "repair fixed 42" in str(fixed)
    after = check(mem, batch=3)
    assert after.clean, str(after)
    assert "clean" in str(after)

    # re-added from the hashes' own fields
    assert r.sismember("agent:a2:action:types:move", "a2-2-move")
    assert r.zscore("agent:a2:action:timeline", "a2-4-move") == 4
    assert r.zscore("agent:a2:action:rewards", "a2-4-move") == 0.4
    assert r.sismember("agent:a1:action:targets:t1", "a1-0-move")
    assert r.lrange("simulation:s1:actions", -1, -1) == [b"a1-2-move"]
    assert r.sismember("simulation:s1:actions:3", "a1-3-eat")
    assert r.zscore("simulation:s1:actions:steps", "5") == 5
    assert r.zrange("simulation:s1:actions:steps", 0, -1) == [b"0", b"1", b"2", b"3", b"4",
                                                             b"5"]
    assert r.zscore("agent:a1:im:action:timeline", "a1-52-move") == 52
    assert r.zrange("agent:a1:im:action:timeline", 0, -1) == [b"a1-50-move", b"a1-52-move"]
    by_type = {k.decode(): int(v) for k, v in r.hgetall("simulation:s1:actions:by_type").items()}
    assert by_type == expected_counts == true_counts(mem, "s1") == {"move": 6, "eat": 5}
    assert not r.exists("agent:e1:action:timeline", "agent:e2:action:types:eat")
    assert [a.action_id for a in mem.actions.by_type("a2", "move")] == [
        "a2-4-move", "a2-2-move", "a2-0-move"]
    assert repair(mem).clean  # nothing left to do


def test_clean_store_checks_clean_and_repair_changes_nothing(r: redis.Redis,
                                                             mem: agentmem.Memory) -> None:
    assert check(mem).clean  # empty store
    many = [act(f"a{i % 3}", i, "move" if i % 2 else "eat", sim=f"s{i % 2}",
                action_target_id=f"t{i % 4}" if i % 5 else None,
                reward=i / 7 if i % 3 else None) for i in range(150)]
    mem.actions.add_many(many)  # 50 per agent: the relative index holds only 20
    mem.actions.add_many([act("a0", 7, "move", sim="s0")] * 3)  # a0-7-move, .1, .2
    mem.im_actions.add_many([im("a1", 1000 + i, "move") for i in range(10)])
    before = snapshot(r)
    for batch in (1, 7, 1000):
        report = check(mem, batch=batch)
        assert report.clean, str(report)
        assert report.hashes_checked == 163
    assert repair(mem, batch=5).clean
    assert snapshot(r) == before


def test_agent_ids_limit_the_scope(r: redis.Redis, mem: agentmem.Memory) -> None:
    mem.actions.add_many(live_actions(agents=("a1", "a2", "a-3")))
    r.delete("agent:a1:action:a1-1-eat", "agent:a-3:action:a-3-1-eat")
    r.srem("agent:a2:action:types:move", "a2-2-move")
    r.lrem("simulation:s1:actions", 0, "a-3-2-move")
    r.hset("simulation:s1:actions:by_type", "move", 1)
    one = check(mem, agent_ids=["a-3"])
    assert one.orphans == {"timeline": 1, "relative_index": 1, "types": 1,
                           "sim_actions": 1, "sim_step": 1}
    assert one.missing == {"sim_actions": 1}
    assert one.counters == {}
    assert repair(mem, agent_ids=("a-3", "a-3")).total == 6
    assert check(mem, agent_ids=["a-3"]).clean
    rest = check(mem)
    assert rest.orphans == {"timeline": 1, "relative_index": 1, "types": 1,
                            "sim_actions": 1, "sim_step": 1}
    assert rest.missing == {"types": 1}
    assert rest.counters == {"sim_by_type": 2}
    assert repair(mem).total == 8
    assert check(mem).clean
    with pytest.raises(InvalidInput):
        check(mem, agent_ids="a1")
    with pytest.raises(InvalidInput):
        check(mem, batch=0)
    with pytest.raises(InvalidInput):
        repair(mem, agent_ids=["a:1"])


@pytest.mark.slow
def test_big_simulation_counts_in_slices(monkeypatch: pytest.MonkeyPatch, r: redis.Redis,
                                         mem: agentmem.Memory) -> None:
    monkeypatch.setattr(checker, "CONSISTENT_COUNT_MAX", 4)
    mem.actions.add_many(live_actions())
    r.delete("agent:a2:action:a2-5-eat")
    r.lrem("simulation:s1:actions", 0, "a1-4-move")
    r.hdel("simulation:s1:actions:by_type", "move")
    found = check(mem, batch=3)
    assert found.counters == {"sim_by_type": 2}
    assert found.missing == {"sim_actions": 1}
    assert repair(mem, batch=3).counters == {"sim_by_type": 2}
    assert check(mem, batch=3).clean
    assert mem.actions.type_counts("s1") == {"move": 6, "eat": 5}


class Recording:
    """A runner that records the size of every reply (no patching of agentmem)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.client, self.largest = inner, inner.client, 0

    def run(self, plan: Any) -> Any:
        out = self.inner.run(plan)
        items = out if isinstance(out, list) else [out]
        flat = [x for item in items for x in (item if isinstance(item, list) else [item])]
        self.largest = max(self.largest, len(flat))
        return out

    def settle(self) -> None:  # nothing is sent ahead here; Memory.client asks
        self.inner.settle()


def _calls(r: redis.Redis, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.slow
def test_large_keyspace_in_batches_without_keys(r: redis.Redis, mem: agentmem.Memory) -> None:
    mem.actions.add_many([act(f"agent{a}", s, "move" if s % 2 else "eat", sim="big")
                          for s in range(100) for a in range(200)])
    gone = [f"agent:agent{a}:action:agent{a}-{s}-eat" for a, s in
            zip(range(0, 200, 5), range(0, 80, 2), strict=True)]  # 40, none in relative
    r.delete(*gone)
    r.config_resetstat()
    mem.runner = Recording(mem.runner)  # type: ignore[assignment]
    batch = 100
    found = check(mem, batch=batch)
    assert found.orphans == dict.fromkeys(("timeline", "types", "sim_actions", "sim_step"), 40)
    assert found.missing == {}
    assert found.counters == {"sim_by_type": 1}
    assert found.hashes_checked == 20_000 - 40
    assert repair(mem, batch=batch).total == 161
    assert check(mem, batch=batch).clean
    assert _calls(r, "keys") == 0
    keys = r.dbsize()
    assert _calls(r, "scan") >= 3 * keys // batch  # COUNT bounds each SCAN step
    assert mem.runner.largest <= 6 * batch + 1  # type: ignore[attr-defined]
    assert mem.actions.type_counts("big") == {"move": 10_000, "eat": 9_960}


def test_repair_while_writers_run(r: redis.Redis, mem: agentmem.Memory) -> None:
    mem.actions.add_many(live_actions(agents=tuple(f"a{i}" for i in range(20)), steps=30))
    for i in range(20):
        r.delete(*(f"agent:a{i}:action:a{i}-{s}-move" for s in range(0, 10, 2)))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for s in range(30, 60):
                mem.actions.add_many([act(f"a{i}", s, "move" if s % 2 == 0 else "eat",
                                          sim="s1", reward=0.1) for i in range(20)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    fixed = repair(mem, batch=20)
    writer.join()
    assert not errors
    assert fixed.orphans["timeline"] == 100
    assert fixed.missing == {}
    after = check(mem, batch=50)
    assert after.clean, str(after)
    assert r.llen("simulation:s1:actions") == 20 * 30 - 100 + 20 * 30
    assert sum(mem.actions.type_counts("s1").values()) == 1100


# -- layouts 2 and 3 (hash tags; layout 3: short hash field names) ---------------------------

LAYOUT_ORPHANS = {"timeline": 4, "relative_index": 4, "types": 4, "targets": 1, "rewards": 1,
                  "grid": 1, "sim_actions": 4, "sim_step": 4, "sim_steps": 1, "sim_grid": 1,
                  "im_timeline": 1}
LAYOUT_MISSING = dict.fromkeys(("types", "timeline", "rewards", "targets", "grid", "sim_grid",
                                "sim_actions", "sim_step", "sim_steps", "im_timeline"), 1)


def placed_actions(sim: str = "s1", agents: tuple[str, ...] = ("a1", "a2"), steps: int = 6
                   ) -> list[agentmem.Action]:
    """live_actions, the moves with a position (grid and sim_grid entries)."""
    return [a.model_copy(update={"position": (float(a.step_number), 1.0)})
            if a.action_type == "move" else a for a in live_actions(sim, agents, steps)]


def plant(mem: agentmem.Memory, r: redis.Redis) -> None:
    """Every kind of finding, planted through keys rendered by the store's own layout."""
    lay = mem.actions.layout

    def k(family: str, **parts: Any) -> str:
        return lay.key(family, **parts)

    mem.actions.add_many(placed_actions() + placed_actions("s2", ("b1",)))
    mem.im_actions.add_many([im("a1", 50, "move"), im("a1", 51, "eat"), im("a1", 52, "move")])
    # orphans: four hashes gone (a2-0-move with a target, a reward and a position; step 5
    # has no action left)
    for agent, aid in (("a1", "a1-1-eat"), ("a2", "a2-0-move"), ("a1", "a1-5-eat"),
                       ("a2", "a2-5-eat")):
        r.delete(k("action", agent_id=agent, action_id=aid))
    r.delete(k("im_action", agent_id="a1", action_id="a1-51-eat"))
    # missing entries, one per family
    r.srem(k("types", agent_id="a2", action_type="move"), "a2-2-move")
    r.zrem(k("timeline", agent_id="a1"), "a1-2-move")
    r.zrem(k("rewards", agent_id="a1"), "a1-2-move")
    r.srem(k("targets", agent_id="a1", action_target_id="t1"), "a1-3-eat")
    r.zadd(k("grid", agent_id="a1"), {"a1-0-move": 1})  # a wrong cell counts as missing
    r.zrem(k("sim_grid", simulation_id="s1", step_number=2), "a2-2-move")
    r.lrem(k("sim_actions", simulation_id="s1"), 0, "a1-4-move")
    r.srem(k("sim_step", simulation_id="s1", step_number=3), "a2-3-eat")
    r.zrem(k("sim_steps", simulation_id="s1"), "3")
    r.zrem(k("im_timeline", agent_id="a1"), "a1-52-move")
    r.hset(k("sim_by_type", simulation_id="s1"), mapping={"move": 999, "fly": 3})


def stored(r: redis.Redis, version: int) -> dict[str, Any]:
    """Every agentmem key's type and content, hash fields under their storage names, write
    times and TTLs dropped."""
    back = {v.encode(): k.encode() for k, v in keyspace.COMPACT_FIELDS.items()}
    out: dict[str, Any] = {}
    for key, (t, value, _) in content(r).items():
        if t == "hash" and keyspace.layout(version).parse(key)[0] in ("action", "im_action"):
            if version == 3:
                value = {back[f]: v for f, v in value.items()}
            value = {f: v for f, v in value.items() if f != b"stored_at"}
        out[key] = (t, value)
    return out


def test_layouts_2_and_3_find_and_repair_the_same(r: redis.Redis,
                                                  connect: Any) -> None:
    runs = {}
    for version in (2, 3):
        r.flushdb()
        mem = connect(layout_version=version)
        plant(mem, r)
        found = check(mem, batch=3)
        assert check(mem, batch=1000).orphans == found.orphans
        fixed = repair(mem, batch=3)
        after = check(mem)
        assert after.clean, str(after)
        runs[version] = (found, fixed, stored(r, version), mem)
    for version, (found, fixed, _, mem) in runs.items():
        for report in (found, fixed):
            assert (report.orphans, report.missing, report.counters) == (
                LAYOUT_ORPHANS, LAYOUT_MISSING, {"sim_by_type": 3}), version
        assert found.total == fixed.total == 39
        assert found.hashes_checked == 2 * 6 + 6 - 4 + 3 - 1
        assert mem.actions.type_counts("s1") == {"move": 5, "eat": 3}
    (f2, x2, s2, _), (f3, x3, s3, _) = runs[2], runs[3]
    for a, b in ((f2, f3), (x2, x3)):
        assert {k: sorted(v) for k, v in a.samples.items()} == \
            {k: sorted(v) for k, v in b.samples.items()}
        assert (a.keys_scanned, a.hashes_checked) == (b.keys_scanned, b.hashes_checked)
    assert s3 == s2  # the same keys and content, hash fields renamed
    lay = keyspace.layout(3)
    assert r.zscore(lay.key("im_timeline", agent_id="a1"), "a1-52-move") == 52
    assert r.zscore(lay.key("timeline", agent_id="a1"), "a1-2-move") == 2
    assert r.zscore(lay.key("rewards", agent_id="a1"), "a1-2-move") == 0.2
    assert r.lrange(lay.key("sim_actions", simulation_id="s1"), -1, -1) == [b"a1-4-move"]
    assert r.zscore(lay.key("sim_steps", simulation_id="s1"), "3") == 3
    assert r.zscore(lay.key("grid", agent_id="a1"), "a1-0-move") != 1
    assert r.zscore(lay.key("sim_grid", simulation_id="s1", step_number=2), "a2-2-move") == \
        r.zscore(lay.key("grid", agent_id="a2"), "a2-2-move")


@pytest.mark.parametrize("version", [2, 3])
def test_agent_ids_and_sliced_counts_on_layouts_2_and_3(
        version: int, monkeypatch: pytest.MonkeyPatch, r: redis.Redis, connect: Any) -> None:
    mem = connect(layout_version=version)
    lay = mem.actions.layout
    mem.actions.add_many(live_actions(agents=("a1", "a2", "a-3")))
    r.delete(lay.key("action", agent_id="a-3", action_id="a-3-1-eat"))
    r.lrem(lay.key("sim_actions", simulation_id="s1"), 0, "a-3-2-move")
    r.hdel(lay.key("sim_by_type", simulation_id="s1"), "move")
    one = check(mem, agent_ids=["a-3"])
    assert one.orphans == {"timeline": 1, "relative_index": 1, "types": 1,
                           "sim_actions": 1, "sim_step": 1}
    assert one.missing == {"sim_actions": 1}
    monkeypatch.setattr(checker, "CONSISTENT_COUNT_MAX", 4)  # 'count' slices, then 'check'
    found = check(mem, batch=3)
    assert found.counters == {"sim_by_type": 2}  # move absent; eat one too many
    assert repair(mem, batch=3).counters == {"sim_by_type": 2}
    assert check(mem, batch=3).clean
    assert mem.actions.type_counts("s1") == {"move": 9, "eat": 8}
