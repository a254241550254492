"""``DualWriter(..., archive_thread=True)``: due archive writes on a thread of their own.

Real Redis, real SQLite files (a real lock held by another connection) and real
PostgreSQL; the thread's writes are seen through the archive they went to.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from test_dualwrite import (  # noqa: F401 - fixtures
    SIM,
    Lock,
    _short_busy_timeout,
    act,
    archive,
    archived_ids,
    db,
    mem,
    redis_ids,
    redis_url,
    wait_until,
)
from test_sql_archive import db_of

from agentmem import Action
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import BackendError, ConfigError
from agentmem.integrations.agentfarm import AgentFarmLogger
from agentmem.tiers.maintenance import TierPolicy, Tiers


class SharedLock(Lock):
    """A :class:`Lock` any thread may release (another process holding the archive's lock)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=1, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")


class Spy:
    """Wraps ``archive.write`` to record the thread of each call (the archive is real)."""

    def __init__(self, target: Archive) -> None:
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.failed = threading.Event()
        self._write = target.write
        target.write = self  # type: ignore[method-assign]

    def __call__(self, rows: list[Action]) -> int:
        self.threads.append(threading.get_ident())
        self.entered.set()
        try:
            return self._write(rows)
        except Exception:
            self.failed.set()
            raise


@pytest.fixture(params=["sqlite", "postgresql"])
def any_archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Archive]:
    for where in db_of(request.param, tmp_path):  # (test_sql_archive's db fixture)
        with open_archive(where.url) as a:
            yield a


@pytest.mark.parametrize("durability", ["archived", "buffered"])
def test_archive_thread_needs_durability_redis(
        mem: Memory, archive: Archive, durability: str) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="archive_thread=True needs durability='redis'"):
        DualWriter(mem, archive, archive_thread=True, durability=durability)  # type: ignore[arg-type]


def test_due_writes_run_on_the_archive_thread_and_flush_waits_for_them(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    spy = Spy(archive)
    w = DualWriter(mem, archive, buffer_size=100, archive_thread=True)
    for step in range(4):  # 4 calls of 30: due at 120 (below 2 x 100: the thread's)
        w.add_many([act(agent_id=f"a{k}", step=step) for k in range(30)])
    wait_until(lambda: archive.count() >= 100)
    assert spy.threads[0] != threading.get_ident()  # the first due write: the thread's
    for step in range(4, 10):  # 6 more: due again at 210 and 300
        w.add_many([act(agent_id=f"a{k}", step=step) for k in range(30)])
    w.flush()  # waits for the thread's write in progress, then writes the rest here
    assert w.pending == 0
    assert archive.count() == 300
    assert spy.threads[-1] == threading.get_ident()
    w.close()
    assert sorted(archived_ids(archive)) == sorted(redis_ids(mem))  # type: ignore[type-var]
    assert not w._archiver.thread.is_alive()  # type: ignore[union-attr]


def test_redis_writes_go_on_while_the_archive_write_waits_on_a_lock(
        mem: Memory, db: Path) -> None:  # noqa: F811
    with open_archive(db) as archive:  # noqa: F811
        _short_busy_timeout(archive, 10_000)  # the thread's write waits for the lock
        w = DualWriter(mem, archive, buffer_size=50, archive_thread=True)
        spy = Spy(archive)
        lock = Lock(db)
        try:
            w.add_many([act(agent_id=f"a{k}", step=0) for k in range(50)])  # due: wakes it
            assert spy.entered.wait(5)  # the thread is inside Archive.write, on the lock
            for step in range(1, 5):  # below twice buffer_size: none of these archives here
                w.add_many([act(agent_id=f"a{k}", step=step) for k in range(10)])
            # all stored while the archive was locked: the caller did not wait for it
            assert len(redis_ids(mem)) == 90
            assert w.pending == 90
        finally:
            lock.release()
        w.close()
        assert archive.count() == 90
        assert sorted(archived_ids(archive)) == sorted(redis_ids(mem))  # type: ignore[type-var]


def test_the_buffer_stays_within_twice_buffer_size_and_one_call(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    """A caller faster than the archive archives on its own thread at 2 * buffer_size."""
    w = DualWriter(mem, archive, buffer_size=40, archive_thread=True)
    most = 0
    for step in range(60):
        w.add_many([act(agent_id=f"a{k}", step=step) for k in range(15)])
        most = max(most, w.pending)
    assert most < 2 * 40 + 15
    w.close()
    assert archive.count() == 900
    assert sorted(archived_ids(archive)) == sorted(redis_ids(mem))  # type: ignore[type-var]


@contextlib.contextmanager
def failed_thread_write(mem: Memory, archive: Archive, db: Path  # noqa: F811
                        ) -> Iterator[DualWriter]:
    """A writer (20 rows per archive write, the archive thread) whose thread's first write
    of 20 actions failed on a lock another connection holds (the archive's busy timeout
    is 100 ms), its error kept; the block runs with the lock held, released on leaving."""
    spy = Spy(archive)
    w = DualWriter(mem, archive, buffer_size=20, archive_thread=True)
    lock = Lock(db)
    try:
        w.add_many([act(agent_id=f"a{k}", step=0) for k in range(20)])  # due: wakes it
        assert spy.failed.wait(5)
        with w._archive_lock:  # the thread's write is over: its error is kept
            pass
        yield w
    finally:
        lock.release()


def test_a_failed_write_of_the_thread_is_raised_by_the_next_call_and_loses_nothing(
        mem: Memory, archive: Archive, db: Path) -> None:  # noqa: F811
    with failed_thread_write(mem, archive, db) as w:
        with pytest.raises(BackendError, match="locked"):
            w.add_many([act(agent_id=f"a{k}", step=1) for k in range(5)])
        assert len(redis_ids(mem)) == 20  # the call that raised stored nothing
        assert w.pending == 20  # kept for the next write
        w.add_many([act(agent_id=f"a{k}", step=1) for k in range(5)])  # raised once
    w.flush()  # (the thread may have archived them first, woken by the last call)
    assert archive.count() == 25
    assert w.pending == 0
    w.close()
    assert sorted(archived_ids(archive)) == sorted(redis_ids(mem))  # type: ignore[type-var]


def test_an_error_healed_by_a_later_write_is_not_raised(
        mem: Memory, archive: Archive, db: Path) -> None:  # noqa: F811
    with failed_thread_write(mem, archive, db) as w:
        pass
    assert w.flush() == 20  # everything the failed write had is archived now
    w.add_many([act(agent_id=f"a{k}", step=1) for k in range(5)])  # nothing to raise
    w.close()
    assert archive.count() == 25


def test_random_writes_flushes_and_discards_archive_exactly_what_redis_holds(
        mem: Memory, any_archive: Archive) -> None:  # noqa: F811
    """The caller's writes, ``flush_if_needed``, ``flush`` and ``discard`` interleaved with
    the thread's writes: at close the archive holds exactly Redis's actions, once."""
    rng = random.Random(11)
    w = DualWriter(mem, any_archive, buffer_size=37, interval=0.002, archive_thread=True)
    dropped: list[Action] = []
    written = 0
    for step in range(120):
        n = rng.randint(1, 25)
        w.add_many([act(agent_id=f"a{k}", step=step) for k in range(n)])
        written += n
        roll = rng.random()
        if roll < 0.3:
            w.flush_if_needed()
        elif roll < 0.35:
            w.flush()
        elif roll < 0.45:
            gone = f"a{rng.randrange(25)}"
            dropped += w.discard(lambda a, g=gone: a.agent_id == g,  # type: ignore[misc]
                                 lambda a: mem.actions.delete(str(a.action_id),
                                                              agent_id=a.agent_id))
    w.close()
    in_redis = redis_ids(mem)
    archived = archived_ids(any_archive)
    assert len(archived) == len(set(archived))
    assert sorted(archived) == sorted(in_redis)  # type: ignore[type-var]
    assert dropped
    assert not {a.action_id for a in dropped} & set(archived)
    assert len(archived) + len(dropped) == written


def test_the_agentfarm_drop_in_refuses_it_with_background(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="archive_thread=True needs durability='redis'"):
        AgentFarmLogger(mem, archive, SIM, background=True, archive_thread=True)


def test_a_failed_write_at_the_bound_never_makes_the_drop_in_store_a_step_twice(
        mem: Memory, db: Path) -> None:  # noqa: F811
    """The caller's own archive write (twice ``buffer_size`` buffered) waits for the thread's,
    which drops its rows from the buffer's head; when the caller's write then fails, the
    drop-in's "did ``add_many`` store them?" (``pending`` grew) must still be right, or
    ``flush_if_needed`` sends the step's actions to Redis again."""
    with open_archive(db) as archive:  # noqa: F811
        _short_busy_timeout(archive, 1500)
        lg = AgentFarmLogger(mem, archive, SIM, buffer_size=20, archive_thread=True,
                             send_ahead=False)  # each flush stores its step before returning
        held: list[SharedLock] = []
        write = archive.write
        thread_calls = [0]

        def locking_after_the_threads_write(rows: list[Action]) -> int:
            n = write(rows)
            if threading.current_thread().name == "agentmem-archiver" and not thread_calls[0]:
                thread_calls[0] += 1
                held.append(SharedLock(db))  # another process takes the lock right after it
            return n

        archive.write = locking_after_the_threads_write  # type: ignore[method-assign]
        spy = Spy(archive)
        logged = 0

        def step(n: int) -> None:
            nonlocal logged
            for k in range(19):
                lg.log_agent_action(n, f"a{k}", "move")
            logged += 19

        step(0)
        lg.flush_if_needed()  # 19 buffered in the writer: not due
        first = SharedLock(db)
        step(1)
        lg.flush_if_needed()  # 38: due, the thread's write waits on the lock
        assert spy.entered.wait(5)

        def release_once_stored() -> None:
            wait_until(lambda: len(redis_ids(mem)) == 57)
            first.release()

        helper = threading.Thread(target=release_once_stored)
        helper.start()
        step(2)
        errors = 0
        try:
            lg.flush_if_needed()  # 57: the caller archives (after the thread's write): locked
        except BackendError:
            errors += 1
        helper.join()
        wait_until(lambda: bool(held))
        held[0].release()
        for n in range(3, 5):
            step(n)
            try:
                lg.flush_if_needed()
            except BackendError:
                errors += 1
        lg.close()
        assert errors == 1  # the locked write was reported
        ids = redis_ids(mem)
        assert len(ids) == logged, "actions stored in Redis twice"
        assert sorted(archived_ids(archive)) == sorted(ids)  # type: ignore[type-var]


def test_flush_if_needed_raises_the_threads_kept_error(
        mem: Memory, archive: Archive, db: Path) -> None:  # noqa: F811
    """A loop that calls ``flush_if_needed`` once per step learns of the thread's failure."""
    with failed_thread_write(mem, archive, db) as w:
        with pytest.raises(BackendError, match="locked"):
            w.flush_if_needed()
        w.flush_if_needed()  # raised once
    w.close()
    assert archive.count() == 20


def test_log_agent_after_its_actions_is_not_refused_while_the_thread_archives(
        mem: Memory, any_archive: Archive) -> None:  # noqa: F811
    """``log_agent`` completes the bare ``agents`` row an action brought; while the thread
    archives that action, the drop-in's own transaction must not collide with it."""
    lg = AgentFarmLogger(mem, any_archive, SIM, buffer_size=5, durability="redis",
                         archive_thread=True)
    errors: list[str] = []
    for i in range(200):
        for step in range(3):
            lg.log_agent_action(step, f"ag{i}", "move")
        try:
            lg.log_agent(f"ag{i}", 0, "basic", (1.0, 2.0), 10.0, 100.0)
        except BackendError as exc:
            errors.append(str(exc))
    lg.close()
    with any_archive.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*), count(agent_type) FROM agents")).one()
    assert errors == []
    assert tuple(rows) == (200, 200)


def test_an_outbox_entry_the_buffer_lacks_is_archived_by_the_callers_next_write(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    """A write whose reply was lost leaves its key in the outbox and not in the buffer:
    the thread's acknowledgement then does not find its keys at the outbox's head, drops
    nothing, and the next due write (the caller's) reads the whole outbox."""
    spy = Spy(archive)
    w = DualWriter(mem, archive, buffer_size=20, archive_thread=True)
    assert w.outbox is not None
    lost = w.outbox.actions.add(act(agent_id="lost", step=0))  # in Redis, not buffered
    w.add_many([act(agent_id=f"a{k}", step=0) for k in range(20)])  # due: the thread's
    assert spy.entered.wait(5)
    with w._archive_lock:  # its write is over
        pass
    assert archive.count() == 20
    assert len(w.outbox.listed()) == 21  # nothing dropped: its keys were not the head
    w.add_many([act(agent_id=f"a{k}", step=1) for k in range(20)])  # due: on this thread
    assert spy.threads[-1] == threading.get_ident()
    assert archive.count() == 41  # the lost one too
    assert w.outbox.listed() == []
    w.close()
    assert sorted(archived_ids(archive)) == sorted(redis_ids(mem))  # type: ignore[type-var]
    assert lost.action_id in archived_ids(archive)


def test_actions_the_thread_archived_are_not_reported_lost_when_they_leave_redis(
        mem: Memory, archive: Archive, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """The thread archived its copy but could not drop its keys (not the outbox's head):
    when those actions leave STM (maintain) before the caller's next write reads the whole
    outbox, that write knows they were archived: no warning that they were gone from
    Redis before they were archived, and nothing read back."""
    spy = Spy(archive)
    w = DualWriter(mem, archive, buffer_size=20, archive_thread=True)
    assert w.outbox is not None
    w.outbox.actions.add(act(agent_id="lost", step=0))  # in Redis, not buffered
    first = w.add_many([act(agent_id="a1", step=k) for k in range(20)])  # the thread's
    assert first is not None
    assert spy.entered.wait(5)
    with w._archive_lock:  # its write is over
        pass
    assert archive.count() == 20
    ids = [str(a.action_id) for a in first]
    assert Tiers(mem).transition("a1", ids) == ids  # archived: they may leave STM
    with caplog.at_level(logging.WARNING, logger="agentmem.dualwrite.archiver"):
        w.add_many([act(agent_id="a2", step=k) for k in range(20)])  # on this thread
    assert spy.threads[-1] == threading.get_ident()
    assert "gone from Redis" not in caplog.text
    assert archive.count() == 41
    assert w.outbox.listed() == []
    w.close()


def _archived_not_head(memory: Memory, into: Archive) -> tuple[DualWriter, list[Action]]:
    """A writer whose thread archived 20 actions and could not drop their keys (an action
    stored in Redis but not buffered is the outbox's head); its write is over."""
    spy = Spy(into)
    w = DualWriter(memory, into, buffer_size=20, archive_thread=True)
    assert w.outbox is not None
    w.outbox.actions.add(act(agent_id="lost", step=0))  # in Redis, not buffered
    first = w.add_many([act(agent_id="a1", step=k, reward=0.0) for k in range(20)])
    assert first is not None
    assert spy.entered.wait(5)
    with w._archive_lock:  # its write is over
        pass
    return w, first


def test_an_action_the_thread_archived_and_updated_since_does_not_stop_archiving(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    """The thread archived its copy but could not drop its keys (not the outbox's head);
    one of those actions is updated in Redis before the caller's next write reads the
    whole outbox. Read back, it held other content than the archived row: every later
    archive write raised DuplicateId and the outbox kept its keys."""
    w, first = _archived_not_head(mem, archive)
    assert archive.count() == 20
    mem.actions.update(first[3].model_copy(update={"reward": 9.0}))  # after it was archived
    for step in range(3):
        w.add_many([act(agent_id="a2", step=step * 20 + k) for k in range(20)])
    w.close()
    assert archive.count() == 81
    assert w.outbox.listed() == []


def test_a_writer_that_stopped_with_archived_keys_listed_is_drained_after_an_update(
        mem: Memory, archive: Archive) -> None:  # noqa: F811
    """The thread archived its copy and left its keys listed (not the outbox's head); the
    process stops before its next write, and one of those actions is updated in Redis.
    The next writer drains the outbox: the action it reads back is the archived one,
    updated; it counts as archived (the row stays: what a drain reads may be older than
    a row maintain archived meanwhile) instead of raising DuplicateId, which kept every
    later writer from opening; the update reaches the archive when the action leaves
    STM."""
    w, first = _archived_not_head(mem, archive)
    assert len(w.outbox.listed()) == 21
    mem.actions.update(first[3].model_copy(update={"reward": 9.0}))
    w.outbox.release()  # the process stops here: its lease is gone
    w._closed = True  # (never closed: no archive write of its own any more)
    w._archiver.stop()  # type: ignore[union-attr]
    nxt = DualWriter(mem, archive)
    assert nxt.recovered.read == 21
    nxt.close()
    assert archive.count() == 21
    got = {a.action_id: a.reward for a in archive.read(SIM)}
    assert got["a1-3-move"] == first[3].reward != 9.0
    assert Tiers(mem, TierPolicy(), archive=archive).transition("a1", ["a1-3-move"]) \
        == ["a1-3-move"]
    got = {a.action_id: a.reward for a in archive.read(SIM)}
    assert got["a1-3-move"] == 9.0
