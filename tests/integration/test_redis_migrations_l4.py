"""Revision 0005 (layout 3 <-> 4: the types and targets indices as sorted sets scored by
step) on real Redis and Valkey.

Data written by a layout-3 store (actions with and without targets, several types, a
set of 5,000 members converted in many chunks), an orphan index entry added by hand,
an entry whose step only its hash knows, TTLs on index keys; the revision up and back
down, a dry run, a run killed half-way and a temporary key a killed run left behind.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _support import act
from test_redis_migrations import _killed_writer, kill_upgrade_midway, populate, snapshot, ttls

import agentmem
from agentmem import LayoutError
from agentmem.lua.migrations import INDEX_KIND
from agentmem.migrations import redis as mig
from agentmem.migrations.redis.versions import v0005_sorted_families as v5
from agentmem.plans import keyspace

LAYOUT_KEY = keyspace.LAYOUT_KEY
LAY = keyspace.layout(3)
TYPES = ("move", "eat", "share")
BIG = 5000
ORPHAN = "a0-999-move"
TTL_KEYS = (LAY.key("types", agent_id="a1", action_type="eat"),
            LAY.key("targets", agent_id="a2", action_target_id="b1"),
            LAY.key("types", agent_id="big", action_type="walk"))
HASH_ONLY = ("h1", "h1-2-move")
"""An agent and an action of its that the timeline lacks (its step is in its hash)."""


def populate3(url: str, r: redis.Redis, agents: int = 3, steps: int = 20,
              big: int = BIG) -> None:
    with agentmem.connect(url, layout_version=3) as mem:
        mem.actions.add_many([
            act(f"a{n}", s, TYPES[s % 3], sim=f"s{n % 2}",
                reward=(s % 7 - 2) / 4 if s % 2 else None,
                action_target_id="b1" if s % 4 == 0 else "b2" if s % 5 == 0 else None)
            for n in range(agents) for s in range(steps)])
        mem.actions.add_many([act("big", s, "walk", sim="s0", reward=s % 3 - 1,
                                  action_target_id="t1" if s % 10 == 0 else None)
                              for s in range(big)])
        mem.actions.add_many([act("h1", s, "move", sim="s0", action_target_id="b1")
                              for s in range(4)])
    assert r.get(LAYOUT_KEY) == b"3"
    r.sadd(LAY.key("types", agent_id="a0", action_type="move"), ORPHAN)  # no hash, no step
    r.zrem(LAY.key("timeline", agent_id=HASH_ONLY[0]), HASH_ONLY[1])
    for n, key in enumerate(TTL_KEYS):  # those there are (a0 only: the big one)
        r.expire(key, 10_000 * (n + 1))


def queries(mem: agentmem.Memory, agents: int = 3) -> dict[str, Any]:
    """The answers of every query that reads a types or targets key."""
    out: dict[str, Any] = {}
    for a in [f"a{n}" for n in range(agents)]:
        for t in TYPES:
            out[f"by_type {a} {t}"] = mem.actions.by_type(a, t)
            out[f"by_type {a} {t} 3"] = mem.actions.by_type(a, t, limit=3)
            out[f"pages {a} {t}"] = pages(mem, "by_type", a, t, size=4)
        for g in ("b1", "b2", "zz"):
            out[f"by_target {a} {g}"] = mem.actions.by_target(a, g)
            out[f"successful {a} {g}"] = mem.actions.successful_interactions(a, g, limit=None)
            out[f"successful {a} {g} 2"] = mem.actions.successful_interactions(a, g)
            out[f"pages target {a} {g}"] = pages(mem, "by_target", a, g, size=3)
    out["big"] = mem.actions.by_type("big", "walk")
    out["big 7"] = mem.actions.by_type("big", "walk", limit=7)
    out["big pages"] = pages(mem, "by_type", "big", "walk", size=900)
    out["big target"] = mem.actions.by_target("big", "t1", limit=50)
    out["big successful"] = mem.actions.successful_interactions("big", "t1", limit=20)
    return out


def pages(mem: agentmem.Memory, query: str, *args: str, size: int) -> list[list[str]]:
    out, cursor = [], None
    while True:
        page = mem.actions.page(query, *args, cursor=cursor, size=size)
        out.append([a.action_id for a in page.items])
        cursor = page.cursor
        if cursor is None:
            return out


def indices(snap: dict[str, Any], lay: keyspace.Layout = LAY) -> dict[str, Any]:
    return {k: v for k, v in snap.items()
            if (lay.parse(k) or ("",))[0] in ("types", "targets")}


def sorted_by_step(snap: dict[str, Any]) -> dict[str, Any]:
    """A layout-3 snapshot as revision 0005 leaves it: each types and targets set a
    sorted set scored by the step of each member (the timeline's, else the hash's), the
    orphan left out."""
    out = {}
    for key, (t, value) in snap.items():
        found = LAY.parse(key)
        if found and found[0] in ("types", "targets"):
            agent = found[1]["agent_id"]
            steps = dict(snap[LAY.key("timeline", agent_id=agent)][1])
            for m in value:
                hkey = LAY.key("action", agent_id=agent, action_id=m.decode())
                if m not in steps and hkey in snap:
                    steps[m] = float(snap[hkey][1][b"n"])
            value = sorted(((m, steps[m]) for m in value if m in steps),
                           key=lambda e: (e[1], e[0]))
            t = "zset"
        out[key] = (t, value)
    return out


def without_orphan(snap: dict[str, Any]) -> dict[str, Any]:
    key = LAY.key("types", agent_id="a0", action_type="move")
    t, members = snap[key]
    return {**snap, key: (t, [m for m in members if m != ORPHAN.encode()])}


def no_temporary_keys(r: redis.Redis) -> bool:
    return not list(r.scan_iter(match=v5.TEMP_PREFIX + "*", count=1000))


def test_head_stops_before_both_opt_in_revisions_and_0005_goes_through_0004(
        server: Any, r: redis.Redis) -> None:
    chain = mig.history()
    assert [(x.revision, x.down_revision, x.layout, x.opt_in) for x in chain[-2:]] == [
        ("0004", "0003", 3, True), ("0005", "0004", 4, True)]
    populate(server.url, r, agents=2, steps=8)  # layout 1, written by layout-1 stores
    assert mig.upgrade(server.url).revisions == ["0002", "0003"]
    assert mig.upgrade(server.url).revisions == []
    r.zrem("agent:{a0}:action:timeline", "a0-2-move")  # its step: in its hash only
    dry = mig.upgrade(server.url, "0005", dry_run=True)  # reads layout 2's step_number
    assert dry.revisions == ["0004", "0005"]
    assert dry.counts["0005"]["to_convert"] == dry.counts["0005"]["keys.types"] + \
        dry.counts["0005"]["keys.targets"] > 0
    assert "orphans" not in dry.counts["0005"]
    assert mig.current(server.url) == "0003"
    report = mig.upgrade(server.url, "0005", batch=7)
    assert report.revisions == ["0004", "0005"]
    assert "orphans" not in report.counts["0005"]
    assert r.zscore("agent:{a0}:action:types:move", "a0-2-move") == 2.0  # layout 3's n
    assert r.get(LAYOUT_KEY) == b"4"
    assert mig.current(server.url) == "0005"
    assert mig.upgrade(server.url).revisions == []  # past head: nothing to do
    assert mig.upgrade(server.url, "0005").revisions == []
    with pytest.raises(mig.MigrationError, match="below the current"):
        mig.upgrade(server.url, "0004")
    assert mig.downgrade(server.url, "0004").revisions == ["0005"]
    assert r.get(LAYOUT_KEY) == b"3"
    assert mig.upgrade(server.url, "0005").revisions == ["0005"]
    assert mig.downgrade(server.url, "0003").revisions == ["0005", "0004"]
    assert r.get(LAYOUT_KEY) == b"2"
    assert mig.downgrade(server.url, "base").revisions == ["0003", "0002"]
    assert r.get(LAYOUT_KEY) == b"1"


def test_a_store_of_layout_4_records_0005(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url, layout_version=4) as mem:
        mem.actions.add(act())
    assert mig.current(server.url) == "0005"
    assert mig.downgrade(server.url, "0004").revisions == ["0005"]
    assert r.type(LAY.key("types", agent_id="a1", action_type="move")) == b"set"


def test_outboxes_listing_unarchived_actions_do_not_hold_up_0005(
        server: Any, r: redis.Redis, tmp_path: Any) -> None:
    """0005 changes two indices' kind only: the hash keys and fields an outbox entry
    names stay, so a killed dual writer's unarchived actions are archived after it, up
    or down (the revisions that move keys or fields still refuse: test_redis_migrations)."""
    from agentmem.backends.sql import open_archive
    from agentmem.dualwrite.outbox import drain

    db = str(tmp_path / "archive.db")
    with agentmem.connect(server.url, layout_version=3) as mem:
        mem.actions.add(act())  # the server claimed by layout 3 (revision 0004)
    _killed_writer(server.url, db, 3, range(4))
    assert mig.upgrade(server.url, "0005").revisions == ["0005"]
    _killed_writer(server.url, db, 4, range(4, 6))
    assert mig.downgrade(server.url, "0004").revisions == ["0005"]
    with agentmem.connect(server.url, layout_version=3) as mem, open_archive(db) as archive:
        assert drain(mem, archive, include_live=True).missing == []
        assert archive.count("s1") == 6


def test_dry_run_counts_and_writes_nothing(server: Any, r: redis.Redis) -> None:
    populate3(server.url, r)
    before, before_ttl = snapshot(r), ttls(r)
    report = mig.upgrade(server.url, "0005", dry_run=True, batch=50)
    assert snapshot(r) == before
    assert ttls(r).keys() == before_ttl.keys()
    assert not r.exists(mig.PROGRESS_KEY)
    assert r.get(LAYOUT_KEY) == b"3"
    assert report.revisions == ["0005"]
    counts = report.counts["0005"]
    ix = indices(before)
    assert counts["keys.types"] == sum(1 for k in ix if ":types:" in k)
    assert counts["keys.targets"] == sum(1 for k in ix if ":targets:" in k)
    assert counts["to_convert"] == len(ix)
    assert counts["orphans"] == 1
    assert counts["members"] == sum(len(v) for _, v in ix.values()) - 1
    assert "converted" not in counts
    assert "orphans: 1" in str(report)


def test_upgrade_sorts_every_index_by_step_then_downgrade_gives_layout_3_back(
        server: Any, r: redis.Redis) -> None:
    populate3(server.url, r)
    with agentmem.connect(server.url, layout_version=3) as mem:
        asked3 = queries(mem)
    before, before_ttl = snapshot(r), ttls(r)
    big_key = LAY.key("types", agent_id="big", action_type="walk")
    assert r.object("encoding", big_key) == b"hashtable"  # SSCAN pages, not one reply
    r.config_resetstat()
    report = mig.upgrade(server.url, "0005", batch=100)
    assert r.info("commandstats")["cmdstat_sscan"]["calls"] >= BIG // 100  # in chunks
    assert report.revisions == ["0005"]
    counts = report.counts["0005"]
    ix = indices(before)
    assert counts["converted"] == counts["keys.types"] + counts["keys.targets"] == len(ix)
    assert counts["orphans"] == 1
    assert counts["members"] == sum(len(v) for _, v in ix.values()) - 1
    after = snapshot(r)
    assert after == sorted_by_step(before)
    assert after[big_key][1][:2] == [(b"big-0-walk", 0.0), (b"big-1-walk", 1.0)]
    assert len(after[big_key][1]) == BIG
    hkey = LAY.key("types", agent_id=HASH_ONLY[0], action_type="move")
    assert r.zscore(hkey, HASH_ONLY[1]) == 2.0  # the step of the hash
    after_ttl = ttls(r)
    assert after_ttl.keys() == before_ttl.keys()
    for key in TTL_KEYS:
        assert before_ttl[key] > 0
        assert before_ttl[key] - 60_000 < after_ttl[key] <= before_ttl[key]
    assert all(after_ttl[k] == -1 for k in ix if k not in TTL_KEYS)
    assert no_temporary_keys(r)
    assert r.get(LAYOUT_KEY) == b"4"
    assert mig.current(server.url) == "0005"
    assert not r.exists(mig.PROGRESS_KEY)

    with agentmem.connect(server.url, layout_version=3) as mem, \
            pytest.raises(LayoutError, match="records layout version 4"):
        mem.actions.recent("a0")
    with agentmem.connect(server.url, layout_version=4) as mem:
        asked4 = queries(mem)
        assert [a.action_id for a in mem.actions.by_type("h1", "move")] == [
            "h1-3-move", "h1-2-move", "h1-1-move", "h1-0-move"]
    assert asked4.keys() == asked3.keys()
    for name, value in asked3.items():
        assert asked4[name] == value, name
    assert len(asked4["big"]) == BIG
    assert asked4["big pages"][0][0] == f"big-{BIG - 1}-walk"

    back = mig.downgrade(server.url, "0004", batch=100)
    assert back.revisions == ["0005"]
    assert back.counts["0005"]["converted"] == len(ix)
    assert "orphans" not in back.counts["0005"]
    assert snapshot(r) == without_orphan(before)
    back_ttl = ttls(r)
    assert back_ttl.keys() == before_ttl.keys()
    for key in TTL_KEYS:
        assert before_ttl[key] - 60_000 < back_ttl[key] <= before_ttl[key]
    assert no_temporary_keys(r)
    assert r.get(LAYOUT_KEY) == b"3"
    assert mig.current(server.url) == "0004"
    with agentmem.connect(server.url, layout_version=3) as mem:
        assert queries(mem) == asked3


def test_a_killed_run_resumes_to_a_correct_result(server: Any, r: redis.Redis) -> None:
    populate3(server.url, r, agents=40, steps=12, big=1500)
    before = snapshot(r)
    kill_upgrade_midway(server.url, r, "0005", "convert", b"n:keys.types")
    assert r.get(LAYOUT_KEY) == b"3>4"
    kinds = {r.type(k) for k in indices(before)}
    assert kinds == {b"set", b"zset"}  # some converted, some not
    with agentmem.connect(server.url, layout_version=4) as mem, \
            pytest.raises(LayoutError, match="in progress"):
        mem.actions.recent("a0")
    report = mig.upgrade(server.url)  # head finishes the unfinished opt-in revision
    assert report.revisions == ["0005"]
    assert (report.start, report.target) == ("0004", "0005")  # not 0001 -> 0005
    assert str(report).startswith("upgrade 0004 -> 0005")
    counts = report.counts["0005"]
    assert counts["keys.types"] + counts["keys.targets"] == len(indices(before))
    assert counts["converted"] + counts.get("already", 0) == len(indices(before))
    assert snapshot(r) == sorted_by_step(before)
    assert no_temporary_keys(r)
    assert r.get(LAYOUT_KEY) == b"4"


def test_a_temporary_key_a_killed_run_left_is_built_again(server: Any, r: redis.Redis
                                                          ) -> None:
    """A runner killed between two chunks of a key leaves the key as it was and a part
    of the sorted set in the temporary key (here with a member the key does not hold):
    the next run starts that key again, and the temporary key is gone after it."""
    populate3(server.url, r, agents=1, steps=6, big=3000)
    before = snapshot(r)
    big_key = LAY.key("types", agent_id="big", action_type="walk")
    tmp = v5.temp_key(big_key)
    assert keyspace.hash_tag(tmp) == keyspace.hash_tag(big_key) == "big"
    timeline = LAY.key("timeline", agent_id="big")
    assert r.script_load(INDEX_KIND.source) == INDEX_KIND.sha
    first = r.evalsha(INDEX_KIND.sha, 3, big_key, tmp, timeline, "z", "1", "0", 100,
                      "agent:{big}:action:", "", "n")
    assert first[0] == 1  # a chunk done, more to come
    assert first[1] != b"0"
    assert 0 < r.zcard(tmp) < 3000
    assert r.type(big_key) == b"set"  # untouched until the last chunk
    r.zadd(tmp, {"big-99999-walk": 5.0})
    r.set(LAYOUT_KEY, "3>4")
    r.set(mig.REVISION_KEY, "0004")
    r.hset(mig.PROGRESS_KEY, mapping={"revision": "0005", "direction": "upgrade",
                                      "phase": "convert", "cursor": "0", "batches": 0})
    report = mig.upgrade(server.url, "0005", batch=100)
    assert report.revisions == ["0005"]
    assert snapshot(r) == sorted_by_step(before)
    assert no_temporary_keys(r)


def test_a_set_written_during_the_revision_fails_verification_then_resumes(
        server: Any, r: redis.Redis) -> None:
    """The state a runner killed after its last verify batch leaves, one types set found
    still a set (a late layout-3 writer): the revision stops, the next run converts it."""
    populate3(server.url, r, agents=2, steps=5, big=10)
    mig.upgrade(server.url, "0005")
    late = LAY.key("types", agent_id="a0", action_type="late")
    r.zadd(LAY.key("timeline", agent_id="a0"), {"a0-50-late": 50})
    r.sadd(late, "a0-50-late")
    odd = LAY.key("types", agent_id="a0", action_type="odd")
    r.set(odd, "another program's string")
    r.set(LAYOUT_KEY, "3>4")
    r.set(mig.REVISION_KEY, "0004")
    r.hset(mig.PROGRESS_KEY, mapping={"revision": "0005", "direction": "upgrade",
                                      "phase": "verify", "cursor": "done", "batches": 3,
                                      "n:left": 1, "n:converted": 12})
    with pytest.raises(mig.MigrationError, match="1 types or targets keys are still sets"):
        mig.upgrade(server.url)
    assert r.get(LAYOUT_KEY) == b"3>4"
    assert mig.status(server.url).in_progress["phase"] == "convert"  # type: ignore[index]
    report = mig.upgrade(server.url, batch=3)
    assert report.counts["0005"]["converted"] == 1
    assert report.counts["0005"]["other_type"] == 1  # left as it is
    assert report.counts["0005"]["already"] == report.counts["0005"]["keys.types"] + \
        report.counts["0005"]["keys.targets"] - 2
    assert r.zrange(late, 0, -1, withscores=True) == [(b"a0-50-late", 50.0)]
    assert r.get(odd) == b"another program's string"
    assert r.get(LAYOUT_KEY) == b"4"


def test_a_key_with_only_orphans_is_deleted_and_the_counts_say_so(
        server: Any, r: redis.Redis) -> None:
    populate3(server.url, r, agents=1, steps=3, big=10)
    lone = LAY.key("targets", agent_id="a0", action_target_id="ghost")
    r.sadd(lone, "a0-70-move", "a0-71-move")
    report = mig.upgrade(server.url, "0005")
    counts = report.counts["0005"]
    assert counts["emptied"] == 1
    assert counts["orphans"] == 3  # and the one of populate3
    assert not r.exists(lone)
    with agentmem.connect(server.url, layout_version=4) as mem:
        assert mem.actions.by_target("a0", "ghost") == []
