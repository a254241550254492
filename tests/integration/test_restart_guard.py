"""A Redis without persistence that restarts empty **between two calls** (the pool
connects again without an error, so the writer never finds it unreachable): the restart
guard (``agentmem/backends/restarts.py``) notices it on the new connection, the writer
seeds the retired marks again before its next write, and no id is given twice.

Before the guard, each of these lost an acknowledged action: the second action took the
first one's id in Redis, the archive refused it at the next archive write or ``close``
(``DuplicateId``), and it was left in Redis only, until its TTL. Real servers, real
restarts (``LocalServer`` stopped and started again on its port, no persistence)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action, Unavailable
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite.ids import IDS_KEY
from agentmem.dualwrite.writer import DualWriter
from agentmem.integrations.agentfarm import AgentFarmLogger
from agentmem.servers.local import LocalServer, find_binary

SIM = "sim-restart"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server binary")
    server = LocalServer("redis", directory=tmp_path / "volatile").start()  # no persistence
    yield server
    server.close()


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = open_archive(tmp_path / "archive.db")
    yield a
    a.close()


def act(reward: float, agent: str = "a0", step: int = 0) -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=step, action_type="move",
                  reward=reward)


def restart_empty(server: LocalServer) -> None:
    """Stop the server and start it again on its port: empty (no persistence)."""
    server.stop()
    server.start()
    with redis.Redis(port=server.port) as r:
        assert r.dbsize() == 0


def archived(archive: Archive) -> list[tuple[str, float]]:
    return sorted((str(a.action_id), float(a.reward or 0)) for a in archive.read(SIM))


def test_a_restart_between_two_calls_gives_no_buffered_id_again(
        srv: LocalServer, archive: Archive) -> None:
    """The first action is acknowledged (in Redis, in the writer's buffer, not archived);
    Redis restarts empty; the next call, of the same agent, step and type, gets an id of
    its own, and both are archived at close."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    first = w.add(act(1.0))
    assert first is not None
    assert first.action_id == "a0-0-move"
    restart_empty(srv)
    second = w.add(act(2.0))  # no error: the guard refused it, it went to the journal
    assert second is not None
    assert second.action_id != "a0-0-move"
    w.close()  # no DuplicateId
    rows = archived(archive)
    assert [r for _, r in rows] == [1.0, 2.0]
    assert len({aid for aid, _ in rows}) == 2
    assert (str(second.action_id), 2.0) in {(str(a.action_id), float(a.reward or 0))
                                            for a in mem.actions.timeline("a0")}
    mem.close()


def test_a_restart_between_two_calls_gives_no_archived_id_again(
        srv: LocalServer, archive: Archive) -> None:
    """The first action is archived already; the marks are seeded again from the archive
    after the restart (before, nothing seeded them: the id was given again)."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive)
    w.add(act(1.0))
    w.flush()
    assert archived(archive) == [("a0-0-move", 1.0)]
    restart_empty(srv)
    for n in range(3):  # the first is journaled and replayed, the others go straight in
        w.add(act(2.0 + n))
    w.close()
    rows = archived(archive)
    assert [r for _, r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert len({aid for aid, _ in rows}) == 4
    mem.close()


def test_a_restart_between_two_flushes_of_the_dropin(srv: LocalServer, tmp_path: Path) -> None:
    """The AgentFarm drop-in (buffered mode, each flush sent ahead): a step flushed, Redis
    restarts empty, the next steps log actions of the same agents, steps and types
    again (an agent that acts twice in a step)."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    archive = open_archive(tmp_path / "farm.db")
    lg = AgentFarmLogger(mem, archive, SIM, commit_interval=1e6, buffer_size=10_000)
    for agent in ("a0", "a1", "a2"):
        lg.log_agent_action(0, agent, "move", reward=1.0)
    lg.flush_if_needed()
    lg.flush_action_buffer()  # the sent-ahead write's reply read: acknowledged
    restart_empty(srv)
    for _ in range(2):
        for agent in ("a0", "a1", "a2"):
            lg.log_agent_action(0, agent, "move", reward=2.0)
        lg.flush_action_buffer()
    lg.close()
    rows = [(a.agent_id, str(a.action_id)) for a in archive.read(SIM)]
    assert len(rows) == 9
    assert len(set(rows)) == 9
    archive.close()
    mem.close()


def test_another_writer_seeding_first_does_not_hide_the_restart(
        srv: LocalServer, archive: Archive) -> None:
    """Two writers on their own connections; Redis restarts empty; the first writes and
    seeds the marks again (its token in the marker); the second's buffered action is not
    in those marks, and its guard sees the marker changed: it seeds its buffer's marks
    before writing an action of that agent, step and type again."""
    mem_a = agentmem.connect(srv.url, socket_timeout=2)
    mem_b = agentmem.connect(srv.url, socket_timeout=2)
    wa = DualWriter(mem_a, archive, buffer_size=10_000, interval=1e6)
    wb = DualWriter(mem_b, archive, buffer_size=10_000, interval=1e6)
    wb.add(act(1.0, agent="b0"))
    restart_empty(srv)
    wa.add(act(5.0, agent="x"))  # seeds the marks again (archive: nothing of b0)
    wa.add(act(6.0, agent="x"))
    with redis.Redis(port=srv.port) as r:
        assert r.exists(IDS_KEY)
    again = wb.add(act(2.0, agent="b0"))
    assert again is not None
    assert again.action_id != "b0-0-move"
    wa.close()
    wb.close()
    b_rows = [(aid, r) for aid, r in archived(archive) if aid.startswith("b0")]
    assert [r for _, r in b_rows] == [1.0, 2.0]
    assert len({aid for aid, _ in b_rows}) == 2
    mem_a.close()
    mem_b.close()


def test_strict_mode_raises_once_then_writes_under_a_new_id(
        srv: LocalServer, archive: Archive) -> None:
    """``strict=True`` keeps no journal: the write the guard refused raises Unavailable
    (nothing sent); the next seeds the marks and writes."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive, strict=True, buffer_size=10_000, interval=1e6)
    w.add(act(1.0))
    restart_empty(srv)
    with pytest.raises(Unavailable, match="lost its data"):
        w.add(act(2.0))
    again = w.add(act(2.0))
    assert again is not None
    assert again.action_id != "a0-0-move"
    w.close()
    assert [r for _, r in archived(archive)] == [1.0, 2.0]
    mem.close()


def test_a_reconnection_to_a_redis_that_kept_its_data_changes_nothing(
        srv: LocalServer, archive: Archive) -> None:
    """Connections killed (``CLIENT KILL``), Redis keeps its data: the guard finds the
    marker it armed with, nothing is seeded again, ids go on as before (no ``.r`` id)."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive)
    w.add(act(1.0, step=0))
    trips = mem.runner.guard.trips
    with redis.Redis(port=srv.port) as r:
        assert r.client_kill_filter(_type="normal", skipme=True) >= 1
    second = w.add(act(2.0, step=1))
    assert second is not None
    assert second.action_id == "a0-1-move"
    assert mem.runner.guard.trips == trips
    assert not mem.runner.guard.tripped
    assert not w.redis_down
    w.close()
    assert archived(archive) == [("a0-0-move", 1.0), ("a0-1-move", 2.0)]
    mem.close()


def test_a_server_that_may_evict_the_marks_is_warned_about(
        tmp_path: Path, archive: Archive, caplog: pytest.LogCaptureFixture) -> None:
    """``maxmemory-policy allkeys-lru`` may evict the retired marks and the marker (they
    have no TTL, and are seldom read): the writer warns when it opens. ``noeviction`` (the
    default) gets no warning."""
    if find_binary("redis") is None:
        pytest.skip("no redis-server binary")
    for policy, warned in (("allkeys-lru", True), ("noeviction", False)):
        server = LocalServer("redis", directory=tmp_path / policy,
                             extra_args=("--maxmemory-policy", policy)).start()
        try:
            caplog.clear()
            with caplog.at_level("WARNING", logger="agentmem.dualwrite"):
                mem = agentmem.connect(server.url)
                DualWriter(mem, archive).close()
                mem.close()
            said = [r.getMessage() for r in caplog.records if "maxmemory-policy" in
                    r.getMessage()]
            assert bool(said) is warned, (policy, said)
        finally:
            server.close()


# -- the marker checked in the write script: flushes and evictions, no reconnection -------


def test_a_flush_between_two_calls_gives_no_held_id_again(
        srv: LocalServer, archive: Archive) -> None:
    """``FLUSHALL`` between two calls: no connection breaks, so the restart guard has
    nothing to notice; the write script finds the marker gone (its token is part of every
    call of the writer), writes nothing, and the writer seeds the marks again (from the
    archive and its buffer) before it writes the action under an id of its own."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    w.add(act(1.0, step=0))  # buffered
    w.add(act(2.0, step=1))
    w.flush()  # archived
    w.add(act(3.0, step=1))  # buffered: a0-1-move.1
    with redis.Redis(port=srv.port) as r:
        r.flushall()
    for n in range(3):
        w.add(act(4.0 + n, step=0))
        w.add(act(7.0 + n, step=1))
    w.close()
    rows = archived(archive)
    assert sorted(r for _, r in rows) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert len({aid for aid, _ in rows}) == 9
    mem.close()


def test_the_marker_deleted_alone_reseeds_and_duplicates_nothing(
        srv: LocalServer, archive: Archive) -> None:
    """Only the marker is gone (evicted, deleted); Redis keeps the actions: the write is
    refused whole, journaled, and after the seeding replayed once (no second copy)."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    w.add_many([act(1.0, agent=f"a{i}") for i in range(5)])
    with redis.Redis(port=srv.port) as r:
        assert r.delete(IDS_KEY) == 1
    w.add_many([act(2.0, agent=f"a{i}") for i in range(5)])
    w.add_many([act(3.0, agent=f"a{i}") for i in range(5)])
    w.close()
    rows = [(a.agent_id, str(a.action_id), a.reward) for a in archive.read(SIM)]
    assert sorted(r for _, _, r in rows) == [1.0] * 5 + [2.0] * 5 + [3.0] * 5
    assert len({(a, i) for a, i, _ in rows}) == 15
    held = {(a.agent_id, str(a.action_id), a.reward) for i in range(5)
            for a in mem.actions.timeline(f"a{i}")}
    assert held == set(rows)
    mem.close()


FLUSHER = """
import random, sys, time, redis
r = redis.Redis(port=int(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    time.sleep(random.uniform(0.002, 0.03))
    r.flushall()
    n += 1
print(n)
"""


@pytest.mark.parametrize("path", ["add_many", "send_many"])
def test_flushes_from_another_process_during_multi_call_writes_lose_nothing(
        srv: LocalServer, archive: Archive, path: str) -> None:
    """Another process flushes Redis every few milliseconds while the writer writes
    rounds of 250 actions (three script calls each) of the same agents, steps and types
    again and again: every acknowledged action is archived once, under an id of its own,
    whatever instant the flushes hit (between calls, between the script calls of one
    write)."""
    import subprocess
    import sys

    mem = agentmem.connect(srv.url, socket_timeout=5)
    w = DualWriter(mem, archive, buffer_size=2_000, interval=1e6, retry_interval=0.01)
    flusher = subprocess.Popen([sys.executable, "-c", FLUSHER, str(srv.port), "2.5"],
                               stdout=subprocess.PIPE, text=True)
    rounds = 0
    try:
        while flusher.poll() is None or rounds < 20:
            batch = [act(float(rounds), agent=f"a{i % 50}", step=i // 50)
                     for i in range(250)]
            getattr(w, path)(batch)
            rounds += 1
    finally:
        flushes = int((flusher.communicate()[0] or "0").strip() or 0)
    w.close()
    rows = [(a.agent_id, str(a.action_id), a.reward) for a in archive.read(SIM)]
    assert flushes > 10
    assert len(rows) == 250 * rounds
    assert len({(a, i) for a, i, _ in rows}) == len(rows)
    got: dict[float, int] = {}
    for _, _, reward in rows:
        got[float(reward or 0)] = got.get(float(reward or 0), 0) + 1
    assert got == {float(n): 250 for n in range(rounds)}
    mem.close()


# -- review of 2026-12-06 (scripts in /tmp/review70): each failed before its fix ---------


def test_a_restart_from_an_older_snapshot_gives_no_id_again(
        srv: LocalServer, archive: Archive) -> None:
    """A crash and a restart that loads an older RDB snapshot (redis-server's default
    save points): the snapshot holds the marker with the same token but not the action
    written after it, which the writer holds in its buffer. The guard also compares the
    server's ``run_id`` (a restart changes it), so the next action of that agent, step
    and type gets an id of its own."""
    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    w.add(act(1.0))
    with redis.Redis(port=srv.port) as r:
        r.save()  # what a save point does
    w.add(act(2.0))  # after the snapshot
    srv.kill()
    srv.start()  # loads the snapshot: the marker, a0-0-move, not a0-0-move.1
    with redis.Redis(port=srv.port) as r:
        assert r.get(IDS_KEY) is not None
        assert r.dbsize() > 0
    third = w.add(act(3.0))
    assert third is not None
    assert third.action_id not in ("a0-0-move", "a0-0-move.1")
    w.close()
    rows = archived(archive)
    assert [r for _, r in rows] == [1.0, 2.0, 3.0]
    assert len({aid for aid, _ in rows}) == 3
    mem.close()


def test_other_writes_through_the_memory_are_not_refused(
        srv: LocalServer, archive: Archive) -> None:
    """The guard refuses the dual writer's own writes only (``Plan.guarded``): after a
    restart, ``load_from_sql`` (explicit ids) on the writer's ``Memory`` loads, and a
    plain ``add`` after the writer closed stores (before, both were refused for ever)."""
    from agentmem.dualwrite.sync import load_from_sql

    mem = agentmem.connect(srv.url, socket_timeout=2)
    w = DualWriter(mem, archive)
    for i in range(5):
        w.add(act(float(i), step=i))
    w.flush()
    restart_empty(srv)
    assert load_from_sql(archive, mem, SIM) == 5
    w.close()
    stored = mem.actions.add(act(9.0, step=50))
    assert stored.action_id == "a0-50-move"
    mem.close()


def test_a_restart_between_the_seeding_and_the_arming_seeds_again(
        srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis restarts again right after the seeding raised the writer's marks and before
    the guard is armed, and another writer seeds the empty Redis first (its token): the
    writer arms only with what its own seeding left, so it seeds again (its buffer's
    marks). Before, it armed with the other writer's token, its buffer's marks missing.
    The instant is forced by running the restart from ``watch_restarts`` (real restart,
    real second writer)."""
    import agentmem.dualwrite.restartwatch as rw

    archive = open_archive(tmp_path / "race.db")
    mem_a = agentmem.connect(srv.url, socket_timeout=2)
    mem_b = agentmem.connect(srv.url, socket_timeout=2)
    wa = DualWriter(mem_a, archive, buffer_size=10_000, interval=1e6)
    wa.add(act(1.0))  # buffered: a0-0-move
    restart_empty(srv)
    real = rw.watch_restarts
    fired: list[int] = []

    def racy(memory: Any, *rest: Any) -> bool:
        if memory is mem_a and not fired:
            fired.append(1)
            restart_empty(srv)  # the marks just raised are gone
            DualWriter(mem_b, archive, buffer_size=10_000, interval=1e6).close()  # seeds
        return real(memory, *rest)

    monkeypatch.setattr(rw, "watch_restarts", racy)
    second = wa.add(act(2.0))
    third = wa.add(act(3.0))
    assert fired == [1]
    assert second is not None
    assert third is not None
    assert "a0-0-move" not in (second.action_id, third.action_id)
    wa.close()
    rows = archived(archive)
    assert [r for _, r in rows] == [1.0, 2.0, 3.0]
    assert len({aid for aid, _ in rows}) == 3
    archive.close()
    mem_a.close()
    mem_b.close()


@pytest.mark.parametrize("how", ["del", "flushall"])
def test_the_marker_lost_between_the_calls_of_one_write_stores_nothing_twice(
        srv: LocalServer, archive: Archive, how: str) -> None:
    """A write of 3,000 actions (30 script calls) at a step below the agent's retired
    mark; another client deletes the marker (or flushes) as soon as the first call listed
    its actions in the outbox. The calls before it stay stored and are archived; only the
    refused calls' actions are journaled and stored again. Before (``del``): the whole
    write was journaled under guessed ``.n`` ids while Redis had given the stored part
    ``.r<n>`` ids, and the replay stored them a second time (300 archived twice)."""
    import threading

    mem = agentmem.connect(srv.url, socket_timeout=5)
    w = DualWriter(mem, archive, buffer_size=100_000, interval=1e6, retry_interval=0.01)
    for step in range(10):
        w.add(act(float(step), step=step))
    w.flush()
    with redis.Redis(port=srv.port) as r:
        r.flushall()
    w.add(act(10.0, step=10))  # seeds the marks again (from the archive): a0 up to 10
    w.flush()
    outbox = w.outbox.key if w.outbox is not None else ""
    fired = threading.Event()

    def lose_marker() -> None:
        with redis.Redis(port=srv.port) as r:
            while not fired.is_set():
                if r.llen(outbox) >= 1:
                    r.delete(IDS_KEY) if how == "del" else r.flushall()
                    fired.set()

    watcher = threading.Thread(target=lose_marker)
    watcher.start()
    try:
        w.add_many([act(100.0 + i, step=3) for i in range(3000)])
    finally:
        fired.set()
        watcher.join()
    w.close()
    rows = [(str(a.action_id), float(a.reward or 0)) for a in archive.read(SIM)]
    assert len(rows) == 3011
    assert len({aid for aid, _ in rows}) == 3011
    assert sorted(r for _, r in rows) == [float(n) for n in range(11)] + [
        100.0 + i for i in range(3000)]
    mem.close()


def test_a_client_refused_info_still_opens_a_writer_and_notices_a_restart(
        srv: LocalServer, archive: Archive, caplog: pytest.LogCaptureFixture) -> None:
    """An ACL user ``+@all -@dangerous`` (INFO and CONFIG refused): the writer opens (the
    run_id is unknown: a warning), writes, and still notices a restart empty between two
    calls by the marker. Before, the writer's constructor raised ``Refused`` (INFO)."""
    with redis.Redis(port=srv.port) as admin:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                              "-@dangerous")
    mem = agentmem.connect(f"redis://app:pw@127.0.0.1:{srv.port}/0", socket_timeout=2)
    with caplog.at_level("WARNING", logger="agentmem.dualwrite"):
        w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    w.add(act(1.0))
    srv.stop()
    srv.start()  # empty, and without the user: create it again
    with redis.Redis(port=srv.port) as admin:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                              "-@dangerous")
    again = w.add(act(2.0))
    assert again is not None
    assert again.action_id != "a0-0-move"
    w.close()
    rows = archived(archive)
    assert [r for _, r in rows] == [1.0, 2.0]
    assert len({aid for aid, _ in rows}) == 2
    mem.close()


def test_a_flush_while_the_marks_are_seeded_keeps_the_buffered_ids(
        srv: LocalServer, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer seeds the marks again (the marker was deleted) while its buffer holds an
    action Redis still holds (so not counted in the marks: Redis keeps its id itself); a
    flush lands after the first seeding attempt raised the marks: the sentinel goes, the
    seeding starts again, and the buffered action must now count (what Redis holds is
    read again after each attempt's sentinel). Before, the second attempt used the first
    one's reading: that action's ``.r`` id was given again and the archive refused the
    new action (lost). The instant is forced from ``_raise_marks`` (a real flush)."""
    import agentmem.dualwrite.ids as ids

    mem = agentmem.connect(srv.url, socket_timeout=5)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6, retry_interval=0.05)
    client = redis.Redis(port=srv.port)
    w.add(act(1.0))
    w.flush()  # archived: a0-0-move
    client.flushall()
    w.add(act(2.0))  # refused (marker gone): journaled; then seeded from the archive
    held = w.add(act(3.0))  # an .r id, buffered, in Redis
    assert held is not None
    assert str(held.action_id).startswith("a0-0-move.r")
    client.delete(IDS_KEY)
    w.add(act(4.0))  # refused: journaled, the guard tripped
    real = ids._raise_marks
    fired: list[int] = []

    def raise_then_flush(memory: Any, marks: Any, seqs: Any) -> int:
        n = real(memory, marks, seqs)
        if not fired:
            fired.append(1)
            client.flushall()  # takes the sentinel, and the buffered action
        return n

    monkeypatch.setattr(ids, "_raise_marks", raise_then_flush)
    fifth = w.add(act(5.0))  # seeds (again, after the flush), then writes
    monkeypatch.setattr(ids, "_raise_marks", real)
    assert fired == [1]
    assert fifth is not None
    assert fifth.action_id != held.action_id
    w.close()
    rows = archived(archive)
    assert sorted(r for _, r in rows) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len({aid for aid, _ in rows}) == 5
    client.close()
    mem.close()


def test_a_writer_that_archived_after_another_seeded_keeps_its_ids(
        srv: LocalServer, tmp_path: Path) -> None:
    """Two writers on their own connections. A holds X (buffered, in Redis); a flush; B
    notices first and seeds the marks from the archive, which lacks X; A archives X (a
    flush drops no connection: A noticed nothing), then A's next write is refused and A
    seeds: the marker is there with B's token, so A raises the archive's marks again
    (X's among them). Before, A raised only its buffer's (empty then), and its next
    action of X's agent, step and type took X's id: the archive refused it (lost)."""
    archive = open_archive(tmp_path / "two.db")
    kw: dict[str, Any] = {"buffer_size": 10_000, "interval": 1e6, "retry_interval": 0.05}
    mem_a = agentmem.connect(srv.url, socket_timeout=5)
    mem_b = agentmem.connect(srv.url, socket_timeout=5)
    wa, wb = DualWriter(mem_a, archive, **kw), DualWriter(mem_b, archive, **kw)
    x = wa.add(act(1.0, agent="a0"))
    assert x is not None
    wb.add(act(2.0, agent="b0"))
    wb.flush()
    with redis.Redis(port=srv.port) as r:
        r.flushall()
    wb.add(act(3.0, agent="b0"))  # refused, journaled
    time.sleep(0.1)  # B's probe is due (retry_interval)
    wb.flush()  # B seeds (from the archive, without X) and replays
    with redis.Redis(port=srv.port) as r:
        assert r.get(IDS_KEY) is not None
    wa.flush()  # X archived
    wa.add(act(4.0, agent="a1"))  # refused (B's token): A seeds again
    z = wa.add(act(5.0, agent="a0"))
    assert z is not None
    assert z.action_id != x.action_id
    wa.close()
    wb.close()
    rows = [(a.agent_id, str(a.action_id), a.reward) for a in archive.read(SIM)]
    assert sorted(r or 0 for _, _, r in rows) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len({(a, i) for a, i, _ in rows}) == 5
    archive.close()
    mem_a.close()
    mem_b.close()
