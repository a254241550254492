"""Layout version 4 (sorted type and target indices) on one real server.

Layout 4 is layout 3 with the ``types`` and ``targets`` keys as sorted sets, each
member scored by its action's step, so that a query of one type or target reads its
newest entries directly (work bounded by the limit, ``docs/performance.md``). The
scenario of ``test_layout2`` (writes, every query, history, tier transitions, pins,
check and repair) runs on layout 3 and on layout 4: every result must be equal, and
every key of the layout-4 run must be the layout-3 key of the same content, the types
and targets sets become sorted sets scored by step. Then what only layout 4 does:
a query of a rare, old type reads no more than its limit, and check and repair see
an entry scored with another step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from _support import act
from test_layout2 import _no_time
from test_layout3 import scenario_on

import agentmem
from agentmem import WriteError
from agentmem.integrity import check, repair
from agentmem.plans import keyspace


@pytest.fixture
def runs(server: Any, r: redis.Redis, tmp_path: Path
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    return scenario_on(server, r, tmp_path, 3, 4)


def sorted_by_step(c3: dict[str, Any], r: redis.Redis) -> dict[str, Any]:
    """Layout-3 content with its types and targets sets as layout 4 keeps them: each
    member scored by its step (read from the timeline of the same run's agent)."""
    lay = keyspace.layout(3)
    out = {}
    for key, (t, value, ttl) in c3.items():
        parsed = lay.parse(key)
        assert parsed is not None
        family, ids = parsed
        if family in ("types", "targets"):
            tl = c3[lay.key("timeline", agent_id=ids["agent_id"])][1]
            steps = dict(tl)
            value = sorted(((m, steps[m]) for m in value), key=lambda e: (e[1], e[0]))
            t = "zset"
        out[key] = (t, value, ttl)
    return out


def test_every_operation_gives_the_same_results_on_layout_4(runs) -> None:
    res3, res4, _, _ = runs
    assert res3.keys() == res4.keys()
    for name in res3:
        assert _no_time(res4[name]) == _no_time(res3[name]), name
    assert res4["by_type"]
    assert res4["by_target"]
    assert res4["successful"]
    assert res4["transition"] == ["a1-3-eat", "a1-4-share"]


def test_layout_4_keys_are_layout_3_keys_with_sorted_types_and_targets(
        runs, r: redis.Redis) -> None:
    _, _, c3, c4 = runs
    assert sorted_by_step(c3, r) == c4
    lay = keyspace.layout(4)
    kinds = {lay.parse(k)[0]: t for k, (t, _, _) in c4.items()}  # type: ignore[index]
    assert kinds["types"] == kinds["targets"] == "zset"


def _write_rare_old(mem: agentmem.Memory, n: int) -> None:
    """``n`` actions of agent a1: the first 20 of type ``rare`` aimed at ``z``, the rest
    of type ``common`` aimed at ``b``."""
    mem.actions.add_many(
        [act("a1", s, "rare" if s < 20 else "common", sim="s1", reward=0.5,
             action_target_id="z" if s < 20 else "b") for s in range(n)])


@pytest.mark.parametrize("version", [3, 4])
def test_by_type_and_target_of_rare_old_actions(server: Any, r: redis.Redis,
                                                version: int) -> None:
    """The answers of both layouts are the newest of the type; on layout 4 the server
    reads the type's sorted set from its top: no ZINTER, no walk of the timeline."""
    r.flushdb()
    with agentmem.connect(server.url, layout_version=version) as mem:
        _write_rare_old(mem, 3000)
        r.config_resetstat()
        got = [a.action_id for a in mem.actions.by_type("a1", "rare", limit=5)]
        assert got == [f"a1-{s}-rare" for s in (19, 18, 17, 16, 15)]
        got = [a.action_id for a in mem.actions.by_target("a1", "z", limit=3)]
        assert got == [f"a1-{s}-rare" for s in (19, 18, 17)]
        stats = r.info("commandstats")
        if version == 4:
            assert "cmdstat_zinter" not in stats
            assert stats["cmdstat_hgetall"]["calls"] == 8  # the limits, nothing more
        else:
            assert stats["cmdstat_zinter"]["calls"] == 2  # the set sorted in the server
        pages = []
        cursor = None
        while True:
            page = mem.actions.page("by_type", "a1", "rare", cursor=cursor, size=7)
            pages.append([a.action_id for a in page.items])
            cursor = page.cursor
            if cursor is None:
                break
        assert [i for page in pages for i in page] == [f"a1-{s}-rare" for s in range(19, -1, -1)]
        ok = mem.actions.successful_interactions("a1", "z", limit=2)
        # equal rewards: ties by id, highest first (byte order), as on every layout
        assert [a.action_id for a in ok] == sorted(
            (f"a1-{s}-rare" for s in range(20)), reverse=True)[:2]


def test_check_and_repair_see_a_wrong_or_missing_sorted_entry(server: Any,
                                                              r: redis.Redis) -> None:
    r.flushdb()
    with agentmem.connect(server.url, layout_version=4) as mem:
        mem.actions.add_many([act("a1", s, "move", sim="s1", action_target_id="b")
                              for s in range(3)])
        lay = keyspace.layout(4)
        types = lay.key("types", agent_id="a1", action_type="move")
        targets = lay.key("targets", agent_id="a1", action_target_id="b")
        r.zadd(types, {"a1-1-move": 99})  # another step's score
        r.zrem(targets, "a1-2-move")
        report = check(mem)
        assert not report.clean
        assert set(report.missing) >= {"types", "targets"}
        repair(mem)
        assert r.zscore(types, "a1-1-move") == 1.0
        assert r.zscore(targets, "a1-2-move") == 2.0
        assert check(mem).clean


def test_update_and_delete_keep_the_sorted_indices(server: Any, r: redis.Redis) -> None:
    """A target changed by ``update`` moves the id from one target's sorted set to the
    other's, scored by its step; ``delete`` removes it from its type's and target's."""
    r.flushdb()
    with agentmem.connect(server.url, layout_version=4) as mem:
        lay = keyspace.layout(4)
        stored = mem.actions.add_many([act("a1", s, "move", sim="s1", action_target_id="b")
                                       for s in range(4)])
        changed = stored[2].model_copy(update={"action_target_id": "c"})
        mem.actions.update(changed)
        tb = lay.key("targets", agent_id="a1", action_target_id="b")
        tc = lay.key("targets", agent_id="a1", action_target_id="c")
        types = lay.key("types", agent_id="a1", action_type="move")
        assert r.zrange(tb, 0, -1, withscores=True) == [
            (b"a1-0-move", 0.0), (b"a1-1-move", 1.0), (b"a1-3-move", 3.0)]
        assert r.zrange(tc, 0, -1, withscores=True) == [(b"a1-2-move", 2.0)]
        assert [a.action_id for a in mem.actions.by_target("a1", "c")] == ["a1-2-move"]
        assert mem.actions.delete("a1-3-move", agent_id="a1")
        assert r.zrange(types, 0, -1) == [b"a1-0-move", b"a1-1-move", b"a1-2-move"]
        assert r.zrange(tb, 0, -1) == [b"a1-0-move", b"a1-1-move"]
        assert [a.action_id for a in mem.actions.by_type("a1", "move", limit=2)] == [
            "a1-2-move", "a1-1-move"]
        assert check(mem).clean


def test_a_types_key_of_the_wrong_kind_refuses_its_record_whole(server: Any,
                                                                r: redis.Redis) -> None:
    """A layout-4 store finding a plain set (layout 3's kind) under a types or targets
    key refuses the records that use it, with nothing of them written, and writes the
    others: the write script's type check covers the sorted sets."""
    r.flushdb()
    with agentmem.connect(server.url, layout_version=4) as mem:
        lay = keyspace.layout(4)
        types = lay.key("types", agent_id="a1", action_type="eat")
        targets = lay.key("targets", agent_id="a2", action_target_id="t")
        mem.actions.recent("a1", 1)  # the empty server claimed for layout 4 first
        r.sadd(types, "x")
        r.sadd(targets, "x")
        with pytest.raises(WriteError) as info:
            mem.actions.add_many([act("a1", 1, "move", sim="s1"), act("a1", 2, "eat", sim="s1"),
                                  act("a2", 1, "move", sim="s1", action_target_id="t")])
        assert set(info.value.failed) == {1, 2}
        assert types in info.value.failed[1]
        assert targets in info.value.failed[2]
        assert info.value.stored == ["a1-1-move"]
        assert not r.exists(lay.key("action", agent_id="a1", action_id="a1-2-eat"))
        assert not r.exists(lay.key("action", agent_id="a2", action_id="a2-1-move"))
        assert r.smembers(types) == r.smembers(targets) == {b"x"}
        assert r.zrange(lay.key("timeline", agent_id="a1"), 0, -1) == [b"a1-1-move"]
