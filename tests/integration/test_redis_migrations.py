"""The key-layout migrations (agentmem.migrations.redis) on real Redis and Valkey.

Data of every family is written by agentmem (layout 1), by the specification's own
code and by other programs (keys of no layout); revisions run in small SCAN
batches; a runner is killed half-way (SIGKILL) and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from _support import act

import agentmem
from agentmem import IMAction, LayoutError
from agentmem.errors import ConfigError
from agentmem.migrations import redis as mig
from agentmem.plans import keyspace
from agentmem.tiers.maintenance import Tiers
from benchmarks.spec_reference import store_agent_action

LAYOUT_KEY = keyspace.LAYOUT_KEY
OTHER = {"unrelated:key": "x", "agentx:a1:action:timeline": "not ours", "agent:": "odd"}


def to_v2(key: str) -> str:
    for lay in (keyspace.layout(1),):
        found = lay.parse(key)
        if found:
            head, first, rest = key.split(":", 2)
            return f"{head}:{{{first}}}:{rest}"
    return key


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key but the migration's own: type and content."""
    out: dict[str, Any] = {}
    for raw in r.scan_iter(count=1000):
        key = raw.decode()
        if key.startswith("agentmem:layout"):
            continue
        t = r.type(raw).decode()
        if t == "hash":
            value: Any = r.hgetall(raw)
        elif t == "zset":
            value = r.zrange(raw, 0, -1, withscores=True)
        elif t == "set":
            value = sorted(r.smembers(raw))
        elif t == "list":
            value = r.lrange(raw, 0, -1)
        else:
            value = r.get(raw)
        out[key] = (t, value)
    return out


def ttls(r: redis.Redis) -> dict[str, int]:
    return {k.decode(): r.pttl(k) for k in r.scan_iter(count=1000)
            if not k.startswith(b"agentmem:layout")}


def populate(url: str, r: redis.Redis, agents: int = 4, steps: int = 12) -> None:
    with agentmem.connect(url) as mem:
        mem.actions.add_many([
            act(f"a{n}", s, "move" if s % 3 else "share", sim=f"s{n % 2}",
                reward=s / 10 if s % 2 else None, action_target_id="b1" if s % 4 == 0 else None,
                details={"s": s, "name": "é"} if s % 5 == 0 else None,
                position=(n + s / 4, -s) if s % 2 == 0 else None)
            for n in range(agents) for s in range(steps)])
        mem.im_actions.add(IMAction(action_id="a0-99-move", agent_id="a0", simulation_id="s0",
                                    step_number=99, action_type="move", importance=0.5))
        Tiers(mem).pin("a0", "a0-1-move")  # the pinned set; the hash loses its TTL
        mem.actions.add(act("zz", 1, "move", sim="s0"))  # moved to IM: the retired marks
        Tiers(mem).transition("zz", ["zz-1-move"])
    spec = redis.Redis.from_url(url, decode_responses=True)
    for s in range(3):  # the specification's code: json.dumps details, its own ids
        store_agent_action(spec, "sp", "sim_spec", s, "gather", reward=0.5,
                           details={"où": [1, 2], "n": s})
    spec.close()
    for key, value in OTHER.items():
        r.set(key, value)


def test_dry_run_counts_per_family_and_writes_nothing(server: Any, r: redis.Redis) -> None:
    populate(server.url, r)
    before, before_ttl = snapshot(r), ttls(r)
    report = mig.upgrade(server.url, dry_run=True, batch=7)
    assert snapshot(r) == before
    assert ttls(r).keys() == before_ttl.keys()
    assert not r.exists(LAYOUT_KEY, mig.REVISION_KEY, mig.PROGRESS_KEY)
    assert report.dry_run
    assert report.revisions == ["0002", "0003"]
    expected: dict[str, int] = {}
    for key in before:
        found = keyspace.layout(1).parse(key)
        if found:
            expected[f"before.{found[0]}"] = expected.get(f"before.{found[0]}", 0) + 1
    assert report.counts["0002"] == expected
    assert len(expected) == 16  # every family of the layout is present
    assert report.counts["0003"]["to_rewrite"] == 3  # the specification's details
    assert "dry run" in str(report)
    assert "before.timeline" in str(report)
    assert mig.current(server.url) == "0001"


def test_upgrade_renames_every_key_keeps_ttls_and_contents(server: Any, r: redis.Redis
                                                           ) -> None:
    populate(server.url, r)
    before, before_ttl = snapshot(r), ttls(r)
    report = mig.upgrade(server.url, "0002", batch=7)
    assert report.revisions == ["0002"]
    after = snapshot(r)
    assert after == {to_v2(k): v for k, v in before.items()}
    for key, value in OTHER.items():  # keys of no layout are left alone
        assert r.get(key) == value.encode()
    after_ttl = ttls(r)
    for key, ms in before_ttl.items():  # RENAME keeps the remaining TTL
        new = after_ttl[to_v2(key)]
        if ms < 0:
            assert new == ms
        else:
            assert ms - 60_000 < new <= ms
    assert r.pttl("agent:{a0}:action:a0-1-move") == -1  # pinned: no TTL, still none
    assert r.get(LAYOUT_KEY) == b"2"
    assert r.get(mig.REVISION_KEY) == b"0002"
    assert not r.exists(mig.PROGRESS_KEY)
    counts = report.counts["0002"]
    for family in keyspace.layout(1).patterns:
        assert counts[f"before.{family}"] == counts[f"after.{family}"] == counts[
            f"moved.{family}"]
    with agentmem.connect(server.url, layout_version=2) as mem:
        assert len(mem.actions.timeline("a1")) == 12
        assert len(mem.actions.near("a1", 0.0, 0.0, 100.0)) == 6  # the grid moved too
        assert len(mem.actions.near_at("s1", 0.0, 0.0, 100.0, step=4)) == 2
        assert mem.actions.type_counts("s0")["share"] == 8
        assert [a.action_id for a in mem.actions.history("a0", 99)] == ["a0-99-move"]
        assert mem.actions.recent("sp", 1)[0].details == {"où": [1, 2], "n": 2}
    with agentmem.connect(server.url) as old, pytest.raises(LayoutError):
        old.actions.recent("a1")
    again = mig.upgrade(server.url, "0002", batch=7)  # at the target: nothing to do
    assert again.revisions == []
    assert snapshot(r) == after


def normalized(snap: dict[str, Any]) -> dict[str, Any]:
    """``details`` as values, not bytes (0003's downgrade writes json.dumps' form)."""
    out = {}
    for key, (t, value) in snap.items():
        if t == "hash" and b"details" in value:
            value = {**value, b"details": json.loads(value[b"details"])}
        out[key] = (t, value)
    return out


def test_downgrade_gives_back_layout_1_exactly(server: Any, r: redis.Redis) -> None:
    populate(server.url, r)
    before, before_ttl = snapshot(r), ttls(r)
    mig.upgrade(server.url, "0002", batch=5)
    report = mig.downgrade(server.url, "base", batch=5)
    assert report.revisions == ["0002"]
    assert snapshot(r) == before
    assert ttls(r).keys() == before_ttl.keys()
    assert r.get(LAYOUT_KEY) == b"1"
    assert mig.current(server.url) == "0001"
    mig.upgrade(server.url, batch=5)
    assert mig.current(server.url) == "0003"
    report = mig.downgrade(server.url, "base", batch=5)
    assert report.revisions == ["0003", "0002"]
    assert normalized(snapshot(r)) == normalized(before)
    spec = {k: v for k, v in before.items() if k.startswith("agent:sp:action:sp-")}
    assert spec
    assert all(snapshot(r)[k] == v for k, v in spec.items())
    with agentmem.connect(server.url) as mem:
        assert len(mem.actions.timeline("a2")) == 12


def test_compact_details_revision(server: Any, r: redis.Redis) -> None:
    populate(server.url, r)
    r.hset("agent:sp:action:sp-9-gather", mapping={
        "action_id": "sp-9-gather", "agent_id": "sp", "simulation_id": "sim_spec",
        "step_number": 9, "action_type": "gather", "details": "not json {"})
    mig.upgrade(server.url, "0002")
    spec_key = "agent:{sp}:action:sp-1-gather"
    ours_key = "agent:{a0}:action:a0-5-share"
    ours = r.hget(ours_key, "details")
    assert r.hget(spec_key, "details") == json.dumps({"où": [1, 2], "n": 1}).encode()
    with agentmem.connect(server.url, layout_version=2) as mem:
        read_before = mem.actions.timeline("sp")
    ttl = r.pttl(spec_key)
    report = mig.upgrade(server.url)
    assert report.counts["0003"]["rewritten"] == 3
    assert report.counts["0003"]["skipped"] == 1
    assert r.hget(spec_key, "details") == '{"où":[1,2],"n":1}'.encode()
    assert r.hget(ours_key, "details") == ours  # agentmem's own: already compact
    assert r.hget("agent:{sp}:action:sp-9-gather", "details") == b"not json {"
    assert 0 < r.pttl(spec_key) <= ttl
    with agentmem.connect(server.url, layout_version=2) as mem:
        assert mem.actions.timeline("sp") == read_before
    assert mig.upgrade(server.url).revisions == []
    mig.downgrade(server.url, "0002")
    assert r.hget(spec_key, "details") == json.dumps({"où": [1, 2], "n": 1}).encode()
    assert mig.current(server.url) == "0002"
    assert r.get(LAYOUT_KEY) == b"2"


def test_an_empty_server_and_bad_targets(server: Any, r: redis.Redis) -> None:
    assert mig.current(server.url) == "0001"
    assert mig.upgrade(server.url).revisions == ["0002", "0003"]
    assert r.get(LAYOUT_KEY) == b"2"
    assert mig.current(server.url) == "0003"
    with agentmem.connect(server.url, layout_version=2) as mem:
        mem.actions.add(act())
    with pytest.raises(mig.MigrationError, match="use downgrade"):
        mig.upgrade(server.url, "0002")
    with pytest.raises(ConfigError, match="unknown revision"):
        mig.upgrade(server.url, "0042")
    with pytest.raises(ConfigError):
        mig.upgrade(server.url, batch=0)


def test_a_key_under_both_names_fails_verification_then_resumes(server: Any, r: redis.Redis
                                                                ) -> None:
    populate(server.url, r, agents=2, steps=4)
    r.zadd("agent:{a1}:action:timeline", {"x": 1})  # a stray layout-2 key
    with pytest.raises(mig.MigrationError, match="both names"):
        mig.upgrade(server.url, "0002", batch=5)
    assert r.get(LAYOUT_KEY) == b"1>2"  # no store opens the data meanwhile
    with agentmem.connect(server.url) as mem, pytest.raises(LayoutError, match="in progress"):
        mem.actions.recent("a0")
    st = mig.status(server.url)
    assert st.in_progress
    assert st.in_progress["revision"] == "0002"
    with pytest.raises(mig.MigrationError, match="interrupted"):
        mig.downgrade(server.url, "base")
    r.delete("agent:{a1}:action:timeline")
    mig.upgrade(server.url, "0002", batch=5)
    assert r.exists("agent:{a1}:action:timeline")
    assert not r.exists("agent:a1:action:timeline")
    assert mig.status(server.url).in_progress is None


def kill_upgrade_midway(url: str, r: redis.Redis, revision: str, phase: str,
                        counter: bytes) -> None:
    """Run ``agentmem migrate upgrade <revision> --batch 5`` slowed down, and SIGKILL it
    once its progress shows ``phase`` with more than 10 in ``counter``: some done, not all."""
    env = {**os.environ, mig.PAUSE_ENV: "0.05"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentmem.cli", "--redis-url", url, "migrate",
         "upgrade", revision, "--batch", "5"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            progress = r.hgetall(mig.PROGRESS_KEY)
            if progress.get(b"phase") == phase.encode() and int(progress.get(counter, 0)) > 10:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_killed_runner_resumes_to_a_correct_result(server: Any, r: redis.Redis) -> None:
    populate(server.url, r, agents=6, steps=30)
    before, before_ttl = snapshot(r), ttls(r)
    kill_upgrade_midway(server.url, r, "0002", "move", b"n:moved.action")
    moved = sum(1 for k in r.scan_iter(match="agent:{*", count=1000))
    left = sum(1 for k in r.scan_iter(match="agent:[^{]*", count=1000))
    assert moved
    assert left
    assert r.get(LAYOUT_KEY) == b"1>2"
    st = mig.status(server.url)
    assert st.in_progress
    assert st.in_progress["phase"] == "move"
    report = mig.upgrade(server.url, "0002", batch=5)  # resumes where it stopped
    assert report.revisions == ["0002"]
    assert snapshot(r) == {to_v2(k): v for k, v in before.items()}
    after_ttl = ttls(r)
    assert {to_v2(k) for k in before_ttl} == after_ttl.keys()
    counts = report.counts["0002"]
    for family in keyspace.layout(1).patterns:  # counted once, across both runs
        assert counts[f"before.{family}"] == counts[f"after.{family}"]
    assert counts["before.action"] == 6 * 30 + 3
    assert r.get(LAYOUT_KEY) == b"2"
    assert mig.current(server.url) == "0002"


def test_a_server_claimed_by_a_layout_2_store_is_at_0002(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url, layout_version=2) as mem:
        mem.actions.add(act())
    assert r.get(LAYOUT_KEY) == b"2"
    assert mig.current(server.url) == "0002"
    assert mig.upgrade(server.url).revisions == ["0003"]
    report = mig.downgrade(server.url, "base", dry_run=True)
    assert report.revisions == ["0003", "0002"]
    assert report.counts["0002"]["before.action"] == 1
    assert mig.current(server.url) == "0003"


def _killed_writer(url: str, db: str, layout: int, steps: range) -> None:
    """A dual writer (durability redis) in a process that dies before it archives: its
    actions are acknowledged, in Redis, and listed in its outbox only."""
    code = (
        "import os, agentmem\n"
        "from agentmem import Action, DualWriter\n"
        "from agentmem.backends.sql import open_archive\n"
        f"m = agentmem.connect({url!r}, layout_version={layout})\n"
        f"w = DualWriter(m, open_archive({db!r}), durability='redis', lease=0.2)\n"
        "w.add_many([Action(agent_id='a1', simulation_id='s1', step_number=s,\n"
        f"                  action_type='move') for s in {list(steps)!r}])\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_migration_refuses_while_outboxes_list_unarchived_actions(
        server: Any, r: redis.Redis, tmp_path: Any) -> None:
    """The outboxes name actions by their hash keys: renaming the keys under them made
    the recovery find every listed hash gone, and those actions were never archived."""
    from agentmem.backends.sql import open_archive
    from agentmem.dualwrite.outbox import REGISTRY, drain

    assert mig.OUTBOX_REGISTRY == REGISTRY
    db = str(tmp_path / "archive.db")
    _killed_writer(server.url, db, 1, range(5))
    for dry_run in (True, False):
        with pytest.raises(mig.MigrationError, match="5 actions listed in dual writers' "):
            mig.upgrade(server.url, dry_run=dry_run)
    assert r.get(LAYOUT_KEY) is None  # nothing written: the data still opens
    assert not r.exists(mig.PROGRESS_KEY)
    with agentmem.connect(server.url) as mem, open_archive(db) as archive:
        assert drain(mem, archive, include_live=True).archived == 5
    assert mig.upgrade(server.url).revisions == ["0002", "0003"]
    _killed_writer(server.url, db, 2, range(5, 8))
    with pytest.raises(mig.MigrationError, match="3 actions listed"):
        mig.downgrade(server.url, "base")
    assert r.get(LAYOUT_KEY) == b"2"
    assert mig.current(server.url) == "0003"  # refused before any revision ran
    assert mig.downgrade(server.url, "0002").revisions == ["0003"]  # renames nothing
    with agentmem.connect(server.url, layout_version=2) as mem, open_archive(db) as archive:
        assert drain(mem, archive, include_live=True).missing == []
        assert archive.count("s1") == 8
    assert mig.downgrade(server.url, "base").revisions == ["0002"]


# -- revision 0004: layout 3, the compact hashes (opt-in) ----------------------------

SHORT = {k.encode(): v.encode() for k, v in keyspace.COMPACT_FIELDS.items()}


def _compact(snap: dict[str, Any]) -> dict[str, Any]:
    """A layout-2 snapshot with the action and IM hashes' fields renamed as layout 3 has them."""
    lay = keyspace.layout(2)
    out = {}
    for key, (t, value) in snap.items():
        found = lay.parse(key)
        if found and found[0] in ("action", "im_action"):
            value = {SHORT.get(k, k): v for k, v in value.items()}
        out[key] = (t, value)
    return out


def test_head_stops_before_the_opt_in_compact_revision(server: Any, r: redis.Redis) -> None:
    populate(server.url, r, agents=2, steps=4)
    assert mig.upgrade(server.url).revisions == ["0002", "0003"]
    assert r.get(LAYOUT_KEY) == b"2"
    assert [rev.revision for rev in mig.history()][-2:] == ["0004", "0005"]
    assert mig.history()[-2].opt_in
    assert mig.history()[-1].opt_in
    dry = mig.upgrade(server.url, "0004", dry_run=True)
    assert dry.counts["0004"]["to_rename"] == 2 * 4 + 3 + 2  # actions (ours, spec's), IM
    assert mig.current(server.url) == "0003"


def test_compact_revision_renames_fields_keeps_ttls_and_reads(server: Any, r: redis.Redis
                                                               ) -> None:
    populate(server.url, r, agents=3, steps=10)
    mig.upgrade(server.url)
    with agentmem.connect(server.url, layout_version=2) as mem:
        read2 = {a: mem.actions.timeline(a) for a in ("a0", "a1", "a2", "sp")}
        im2 = mem.im_actions.get("a0-99-move", agent_id="a0")
        near2 = mem.actions.near("a1", 1.0, -2.0, 5.0)
    before, before_ttl = snapshot(r), ttls(r)
    report = mig.upgrade(server.url, "0004", batch=7)
    assert report.revisions == ["0004"]
    counts = report.counts["0004"]
    assert counts["hashes.action"] == 3 * 10 + 3  # agentmem's and the specification's
    assert counts["hashes.im_action"] == 2
    assert counts["renamed"] == counts["hashes.action"] + counts["hashes.im_action"]
    assert snapshot(r) == _compact(before)
    after_ttl = ttls(r)
    assert after_ttl.keys() == before_ttl.keys()
    for key, ttl in before_ttl.items():  # kept: no hash lost or gained its expiry
        assert (after_ttl[key] > 0) == (ttl > 0), key
    assert r.get(LAYOUT_KEY) == b"3"
    assert mig.current(server.url) == "0004"
    assert mig.upgrade(server.url).revisions == []  # past head: nothing to do
    with agentmem.connect(server.url, layout_version=2) as mem, \
            pytest.raises(LayoutError, match="records layout version 3"):
        mem.actions.recent("a0")
    with agentmem.connect(server.url, layout_version=3) as mem:
        assert {a: mem.actions.timeline(a) for a in read2} == read2
        assert mem.im_actions.get("a0-99-move", agent_id="a0") == im2
        assert mem.actions.near("a1", 1.0, -2.0, 5.0) == near2
        mem.actions.add(act("a0", 50, "move", sim="s0"))
    report = mig.downgrade(server.url, "0003", batch=7)
    assert report.revisions == ["0004"]
    back = snapshot(r)
    new_key = "agent:{a0}:action:a0-50-move"
    assert back.pop(new_key)[1][b"action_id"] == b"a0-50-move"  # written on layout 3
    hashes = {k for k in before if (keyspace.layout(2).parse(k) or ("",))[0] in (
        "action", "im_action")}
    assert len(hashes) == counts["hashes.action"] + counts["hashes.im_action"]
    assert {k: back[k] for k in hashes} == {k: before[k] for k in hashes}
    assert r.get(LAYOUT_KEY) == b"2"
    with agentmem.connect(server.url, layout_version=2) as mem:
        assert mem.actions.timeline("a1") == read2["a1"]


def test_a_killed_compact_revision_resumes(server: Any, r: redis.Redis) -> None:
    populate(server.url, r, agents=6, steps=30)
    mig.upgrade(server.url)
    before = snapshot(r)
    kill_upgrade_midway(server.url, r, "0004", "rename", b"n:renamed")
    assert r.get(LAYOUT_KEY) == b"2>3"
    with agentmem.connect(server.url, layout_version=3) as mem, \
            pytest.raises(LayoutError, match="in progress"):
        mem.actions.recent("a0")
    report = mig.upgrade(server.url)  # head finishes the unfinished opt-in revision
    assert report.revisions == ["0004"]
    assert snapshot(r) == _compact(before)
    assert report.counts["0004"]["renamed"] == report.counts["0004"]["hashes.action"] + \
        report.counts["0004"]["hashes.im_action"]
    assert "conflicts" not in report.counts["0004"]
    assert r.get(LAYOUT_KEY) == b"3"


def test_compact_revision_leaves_a_hash_whose_fields_would_collide(server: Any, r: redis.Redis
                                                                    ) -> None:
    """A field of another program under one of layout 3's names (``r``, ``x``) would be
    overwritten, or read as the action's own: the hash is left as it is and the revision
    stops, naming the conflict; once the field is gone the same command finishes."""
    populate(server.url, r, agents=2, steps=3)
    mig.upgrade(server.url)
    r.hset("agent:{a0}:action:a0-1-move", "r", "another program's r")
    r.hset("agent:{a1}:action:a1-0-share", "x", "another program's x")
    kept = {k: r.hgetall(k) for k in ("agent:{a0}:action:a0-1-move",
                                      "agent:{a1}:action:a1-0-share")}
    with pytest.raises(mig.MigrationError, match=r"2 of them \(e\.g\. agent:\{a"):
        mig.upgrade(server.url, "0004", batch=5)
    assert {k: r.hgetall(k) for k in kept} == kept
    assert r.get(LAYOUT_KEY) == b"2>3"
    r.hdel("agent:{a0}:action:a0-1-move", "r")
    r.hdel("agent:{a1}:action:a1-0-share", "x")
    report = mig.upgrade(server.url, "0004", batch=5)
    assert report.counts["0004"]["renamed"] == 2  # the two left; the rest were done
    assert "conflicts" not in report.counts["0004"]  # renamed ones are no conflicts
    assert r.hget("agent:{a0}:action:a0-1-move", "n") == b"1"
    assert r.get(LAYOUT_KEY) == b"3"


def test_a_compact_revision_killed_after_its_verify_keeps_what_it_found(
        server: Any, r: redis.Redis) -> None:
    """The state a runner killed after its last verify batch leaves (cursor ``done``, one
    hash found still under layout 2's names): the next run must not forget it."""
    populate(server.url, r, agents=2, steps=3)
    mig.upgrade(server.url)
    mig.upgrade(server.url, "0004")
    r.hset("agent:{z1}:action:z1-1-move", mapping={  # a late layout-2 writer's hash
        "action_id": "z1-1-move", "agent_id": "z1", "simulation_id": "s1",
        "step_number": 1, "action_type": "move"})
    r.set(LAYOUT_KEY, "2>3")
    r.set(mig.REVISION_KEY, "0003")
    r.hset(mig.PROGRESS_KEY, mapping={"revision": "0004", "direction": "upgrade",
                                      "phase": "verify", "cursor": "done", "batches": 3,
                                      "n:left": 1, "n:renamed": 12})
    with pytest.raises(mig.MigrationError, match="1 action or IM hashes still hold"):
        mig.upgrade(server.url)
    assert r.get(LAYOUT_KEY) == b"2>3"
    mig.upgrade(server.url)  # renames it, verifies everything again
    assert r.hget("agent:{z1}:action:z1-1-move", "n") == b"1"
    assert r.get(LAYOUT_KEY) == b"3"
