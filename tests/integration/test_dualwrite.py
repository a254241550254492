"""The dual-write unit of work (agentmem.dualwrite) against a real Redis and real SQLite files.

Redis: a private ``redis-server`` for this module, flushed before each test. The
archive: a SQLite file in ``tmp_path``. A failed archive write is made real by a
second sqlite3 connection holding ``BEGIN EXCLUSIVE`` on the file while the
archive's connections run with a short busy timeout.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event

import agentmem
from agentmem import (
    Action,
    BackendError,
    ConfigError,
    DuplicateId,
    InvalidInput,
    Memory,
    Unavailable,
)
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer, find_binary

SIM = "sim01"


def act(agent_id: str = "a1", step: int = 1, action_type: str = "move", **fields: Any) -> Action:
    return Action(agent_id=agent_id, simulation_id=SIM, step_number=step,
                  action_type=action_type, **fields)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server on PATH")
    with LocalServer("redis") as server:
        yield server.url


@pytest.fixture
def mem(redis_url: str) -> Iterator[Memory]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    with agentmem.connect(redis_url) as m:
        yield m


def _short_busy_timeout(archive: Archive, ms: int) -> None:
    def pragma(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={ms}")

    event.listen(archive.engine, "connect", pragma)  # runs after the archive's own pragmas
    archive.engine.dispose()  # connections opened from now on get it


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "archive.db"


@pytest.fixture
def archive(db: Path) -> Iterator[Archive]:
    with open_archive(db) as a:
        _short_busy_timeout(a, 100)
        yield a


class Lock:
    """Another connection holding an exclusive lock on the archive file."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=1, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def archived_ids(archive: Archive) -> list[str | None]:
    return [a.action_id for a in archive.read(SIM)]


def redis_ids(mem: Memory) -> list[str | None]:
    return [a.action_id for a in mem.actions.simulation_actions(SIM)]


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# -- blocking mode ------------------------------------------------------------------------


def test_buffer_fills_then_archive_is_written_in_bulk(mem: Memory, archive: Archive) -> None:
    w = DualWriter(mem, archive, buffer_size=10)
    try:
        for step in range(9):
            stored = w.add(act(step=step))
            assert stored is not None
            assert stored.action_id == f"a1-{step}-move"
            assert stored.stored_at is not None
        assert archive.count() == 0
        assert w.pending == 9
        w.add(act(step=9))
        assert archive.count() == 10  # one bulk write of the full buffer
        assert w.pending == 0
        w.add_many([act(step=s) for s in range(10, 25)])  # 15 at once: over the size
        assert archive.count() == 25
        w.add(act(step=25))
        assert archive.count() == 25
        assert w.pending == 1
    finally:
        w.close()
    assert archive.count() == 26


def test_interval_passes_then_flush_if_needed_writes(mem: Memory, archive: Archive) -> None:
    now = [1000.0]
    w = DualWriter(mem, archive, interval=30.0, clock=lambda: now[0])
    with w:
        for step in range(3):
            w.add(act(step=step))
        assert w.flush_if_needed() == 0
        now[0] += 29.9
        assert w.flush_if_needed() == 0
        assert archive.count() == 0
        now[0] += 0.1
        assert w.flush_if_needed() == 3
        assert archive.count() == 3
        # the timer restarted at that write
        w.add(act(step=3))
        now[0] += 10
        assert w.flush_if_needed() == 0
        # a write after the interval archives by itself, as a full buffer does
        now[0] += 20
        w.add(act(step=4))
        assert archive.count() == 5


def test_defaults_are_agentfarms(mem: Memory, archive: Archive) -> None:
    with DualWriter(mem, archive) as w:
        assert w.buffer_size == 1000
        assert w.interval == 30.0
        assert w.background is False


@pytest.mark.parametrize("bad", [{"buffer_size": 0}, {"interval": 0}, {"queue_size": 0},
                                 {"buffer_size": True}, {"interval": "30"}])
def test_bad_options_are_refused(mem: Memory, archive: Archive, bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DualWriter(mem, archive, **bad)


@pytest.mark.parametrize("bad", [None, 5])
def test_not_an_iterable_of_actions_is_invalid_input(mem: Memory, archive: Archive,
                                                     bad: Any) -> None:
    """(review 120: a bare TypeError before) nothing stored, nothing archived."""
    with DualWriter(mem, archive) as w, pytest.raises(InvalidInput, match="iterable of act"):
        w.add_many(bad)
    assert archive.count() == 0


def test_close_and_with_exit_flush(mem: Memory, archive: Archive) -> None:
    w = DualWriter(mem, archive)
    w.add(act(step=1))
    w.record(agent_id="a1", simulation_id=SIM, step_number=2, action_type="gather", reward=1.0)
    assert archive.count() == 0
    w.close()
    assert archive.count() == 2
    w.close()  # idempotent
    with pytest.raises(ConfigError):
        w.add(act(step=3))

    with DualWriter(mem, archive) as w2:
        w2.add_many([act(step=s, action_type="attack") for s in range(4)])
        assert archive.count() == 2
    assert archive.count() == 6

    def agent_loop() -> None:
        with DualWriter(mem, archive) as w3:  # left by an error
            w3.add(act(step=9))
            raise RuntimeError("the agent loop failed")

    with pytest.raises(RuntimeError):
        agent_loop()
    assert archive.count() == 7


def test_record_validates(mem: Memory, archive: Archive) -> None:
    with DualWriter(mem, archive) as w:
        with pytest.raises(InvalidInput):
            w.record(agent_id="a1", simulation_id=SIM, step_number=-1, action_type="move")
        with pytest.raises(InvalidInput):
            w.add_many([act(), "not an action"])  # type: ignore[list-item]
        assert w.pending == 0
    assert redis_ids(mem) == []


def test_failed_commit_keeps_its_rows(mem: Memory, archive: Archive, db: Path) -> None:
    w = DualWriter(mem, archive, buffer_size=5)
    lock = Lock(db)
    try:
        for step in range(4):
            w.add(act(step=step))
        with pytest.raises(BackendError, match="locked"):
            w.add(act(step=4))  # the buffer is full: the archive write fails
        # stored in Redis, kept in the buffer, nothing archived
        assert len(redis_ids(mem)) == 5
        assert w.pending == 5
        with pytest.raises(BackendError, match="locked"):
            w.flush()
        assert w.pending == 5
    finally:
        lock.release()
    assert w.flush() == 5
    assert w.pending == 0
    assert w.flush() == 0
    w.close()
    assert archived_ids(archive) == [f"a1-{s}-move" for s in range(5)]
    assert archived_ids(archive) == redis_ids(mem)


def test_reflushing_the_same_actions_never_duplicates(mem: Memory, archive: Archive) -> None:
    w = DualWriter(mem, archive)
    stored = w.add_many([act(step=s) for s in range(5)])
    assert stored is not None
    # the commit went through but the writer did not learn it (e.g. the reply was lost):
    assert archive.write(stored) == 5
    assert w.flush() == 0  # the same rows again: nothing inserted
    assert archive.write(stored) == 0
    w.close()
    assert archive.count() == 5
    assert archived_ids(archive) == [a.action_id for a in stored]


def test_every_action_is_in_redis_and_archived_exactly_once(
        mem: Memory, archive: Archive) -> None:
    expected: list[Action] = []
    with DualWriter(mem, archive, buffer_size=7) as w:
        for step in range(12):
            for agent in ("a1", "a2"):
                a = w.add(act(agent, step, reward=step / 10, details={"n": step}))
                assert a is not None
                expected.append(a)
            # a second row of the same agent, step and type: a distinct id
            again = w.add_many([act("a1", step, module_type="dqn"), act("a2", step, "gather")])
            assert again is not None
            expected.extend(again)
        r = w.record(agent_id="a3", simulation_id=SIM, step_number=0, action_type="share",
                     action_target_id="a1", position=(1.0, 2.0))
        assert r is not None
        expected.append(r)
    ids = [a.action_id for a in expected]
    assert len(set(ids)) == len(ids) == 12 * 4 + 1
    assert "a1-0-move.1" in ids
    assert sorted(redis_ids(mem)) == sorted(ids)  # type: ignore[type-var]
    archived = archive.read(SIM)
    assert len(archived) == archive.count() == len(ids)
    by_id = {a.action_id: a for a in archived}
    for a in expected:
        assert by_id[a.action_id] == a  # the stored copy, write time included
        assert mem.actions.get(a.action_id, agent_id=a.agent_id) == a


# -- background mode ----------------------------------------------------------------------


class Gate:
    """Holds the archive's writes until opened (the writes themselves are real)."""

    def __init__(self, archive: Archive) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self._write = archive.write

        def write(actions: Any) -> int:
            self.entered.set()
            assert self.open.wait(10)
            return self._write(actions)

        archive.write = write  # type: ignore[method-assign]


def test_background_add_returns_without_waiting(mem: Memory, archive: Archive) -> None:
    gate = Gate(archive)
    w = DualWriter(mem, archive, background=True, buffer_size=1)
    try:
        assert w.add(act(step=0)) is None
        assert gate.entered.wait(5)  # the thread is stuck in the archive write
        t0 = time.monotonic()
        for step in range(1, 50):
            assert w.add(act(step=step)) is None
        assert w.record(agent_id="a1", simulation_id=SIM, step_number=50,
                        action_type="move") is None
        assert w.add_many([act(step=51)]) is None
        assert time.monotonic() - t0 < 1.0  # never waited for the stuck write
        assert archive.count() == 0
    finally:
        gate.open.set()
        w.close()
    assert archived_ids(archive) == [f"a1-{s}-move" for s in range(52)]
    assert redis_ids(mem) == archived_ids(archive)


def test_background_backpressure_on_a_full_queue(mem: Memory, archive: Archive) -> None:
    gate = Gate(archive)
    w = DualWriter(mem, archive, background=True, buffer_size=1, queue_size=2)
    done = threading.Event()

    def produce() -> None:
        for step in range(10):
            w.add(act(step=step))
        done.set()

    producer = threading.Thread(target=produce, daemon=True)
    try:
        producer.start()
        assert gate.entered.wait(5)
        assert not done.wait(0.2)  # blocked on the full queue, not dropping
        assert w._queue is not None
        assert w._queue.qsize() == 2
    finally:
        gate.open.set()
    producer.join(5)
    assert done.is_set()
    w.flush()
    assert archive.count() == 10
    assert redis_ids(mem) == archived_ids(archive) == [f"a1-{s}-move" for s in range(10)]
    w.close()


def test_background_flush_drains(mem: Memory, archive: Archive) -> None:
    w = DualWriter(mem, archive, background=True)  # 1000 rows, 30 s: nothing due by itself
    for step in range(300):
        w.add(act(step=step))
    w.flush()
    assert archive.count() == 300
    assert len(redis_ids(mem)) == 300
    w.add_many([act(step=s, action_type="gather") for s in range(5)])
    w.close()
    assert archive.count() == 305
    assert sorted(redis_ids(mem)) == sorted(archived_ids(archive))  # type: ignore[type-var]


def test_background_archive_error_surfaces_on_flush_and_loses_nothing(
        mem: Memory, archive: Archive, db: Path) -> None:
    w = DualWriter(mem, archive, background=True)
    lock = Lock(db)
    try:
        for step in range(20):
            w.add(act(step=step))
        with pytest.raises(BackendError, match="locked"):
            w.flush()
        assert len(redis_ids(mem)) == 20  # in Redis; kept for the archive
        assert archive.count() == 0  # WAL: readers are not blocked by the lock
    finally:
        lock.release()
    w.flush()
    assert archived_ids(archive) == [f"a1-{s}-move" for s in range(20)]
    w.flush()
    w.close()
    assert archive.count() == 20


def test_background_error_surfaces_on_next_add(mem: Memory, archive: Archive, db: Path) -> None:
    w = DualWriter(mem, archive, background=True, buffer_size=1)
    lock = Lock(db)
    try:
        w.add(act(step=0))
        wait_until(lambda: w._error is not None)
        with pytest.raises(BackendError, match="locked"):
            w.add(act(step=1))
        assert w.add(act(step=1)) is None  # reported once; the writer goes on
    finally:
        lock.release()
    w.close()
    assert archived_ids(archive) == ["a1-0-move", "a1-1-move"]


def test_strict_background_redis_stopped_surfaces_and_is_retried(archive: Archive) -> None:
    if find_binary("redis") is None:
        pytest.skip("no redis-server on PATH")
    server = LocalServer("redis").start()
    try:
        mem = agentmem.connect(server.url, socket_timeout=1, socket_connect_timeout=1)
        w = DualWriter(mem, archive, background=True, strict=True)
        w.add(act(step=0))
        w.flush()
        port = server.port
        server.stop()
        w.add(act(step=1))
        with pytest.raises(Unavailable):
            w.flush()
        server.port = port
        server.start()  # an empty server again (no persistence): the first retry finds it
        with pytest.raises(Unavailable, match="lost its data"):  # lost the retired marks
            w.flush()
        w.flush()  # the marks seeded again: the retry stores step 1
        w.close()
        assert archived_ids(archive) == ["a1-0-move", "a1-1-move"]
        assert redis_ids(mem) == ["a1-1-move"]
        mem.close()
    finally:
        server.close()


@pytest.mark.parametrize("background", [False, True], ids=["blocking", "background"])
def test_interpreter_exit_flushes(mem: Memory, redis_url: str, db: Path,
                                  background: bool) -> None:
    script = f"""
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter

w = DualWriter(agentmem.connect({redis_url!r}), open_archive({str(db)!r}),
               background={background!r})
for step in range(3):
    w.add(Action(agent_id="a1", simulation_id={SIM!r}, step_number=step, action_type="move"))
# no flush, no close: the exit hook archives
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    with open_archive(db) as a:
        assert [x.action_id for x in a.read(SIM)] == ["a1-0-move", "a1-1-move", "a1-2-move"]
    assert redis_ids(mem) == ["a1-0-move", "a1-1-move", "a1-2-move"]


@pytest.mark.parametrize("background", [False, True], ids=["blocking", "background"])
def test_partly_refused_write_archives_what_redis_stored(
        mem: Memory, archive: Archive, background: bool) -> None:
    w = DualWriter(mem, archive, background=background)
    w.add(act(step=0, action_id="a1-0-move"))
    batch = [act(step=0, action_id="a1-0-move"), act(step=1), act(step=2, reward=2.0)]
    if background:
        w.add_many(batch)
        with pytest.raises(DuplicateId):
            w.flush()
    else:
        with pytest.raises(DuplicateId) as info:
            w.add_many(batch)
        assert info.value.stored == ["a1-1-move", "a1-2-move"]
    w.close()
    assert redis_ids(mem) == ["a1-0-move", "a1-1-move", "a1-2-move"]
    archived = archive.read(SIM)
    assert [a.action_id for a in archived] == redis_ids(mem)
    assert archived[2] == mem.actions.get("a1-2-move", agent_id="a1")


def test_the_stored_part_of_a_refused_write_that_redis_lost_is_archived_all_the_same(
        mem: Memory, archive: Archive) -> None:
    """The stored records of a partly refused write are read back from Redis to be
    archived (``DualWriter._stored_part``, run here on a real Redis after the fact): those
    Redis lost in between (a restart, a flush) are archived under the ids the write
    reported, not dropped (before: left out of the buffer, never archived)."""
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    w.add(act(step=0, action_id="a1-0-move"))
    batch = [act(step=0, action_id="a1-0-move"), act(step=1), act(step=2, reward=2.0)]
    with pytest.raises(DuplicateId) as info:
        w.add_many(batch)
    mem.client.flushdb()  # Redis loses the stored records after the write
    again = w._stored_part(batch, info.value)
    assert [(a.action_id, a.step_number, a.reward) for a in again] == [
        ("a1-1-move", 1, None), ("a1-2-move", 2, 2.0)]
    assert all(a.stored_at is not None for a in again)
    w.close()


@pytest.mark.parametrize("background", [False, True])
def test_a_writer_call_inside_archive_paused_is_refused_not_a_deadlock(
        mem: Memory, archive: Archive, background: bool) -> None:
    """archive_paused() is for rows written to the archive directly: a call of the writer
    inside it that would wait for its locks (a read, a blocking write, a flush) raises
    ConfigError at once (with the background
    thread storing and archiving meanwhile it would wait for ever: lock order); the
    writer's threads wait for the block's end; after it everything is stored once."""
    w = DualWriter(mem, archive, background=background, interval=0.05, buffer_size=5)
    w.add_many([act(step=s) for s in range(10)])
    with w.archive_paused():
        time.sleep(0.2)  # the thread stores and reaches its archive write: it waits
        calls = [lambda: w.recent("a1"), w.flush, w.close, lambda: w.add(act(step=99)),
                 lambda: w.send_many([act(step=98)]),
                 lambda: w.discard(lambda a: False, lambda a: None)]
        if not background:  # (background: it only raises a kept error)
            calls.append(w.flush_if_needed)
        for call in calls:
            with pytest.raises(ConfigError, match="archive_paused"):
                call()
        archived = archive.count(SIM)
    w.flush()
    assert archived < 10 or not background
    assert archive.count(SIM) == 10
    assert [a.step_number for a in w.recent("a1", 20)] == list(range(9, -1, -1))
    w.close()
