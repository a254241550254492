"""Dual write: store actions in Redis and archive them in bulk to SQL (a unit of work).

``DualWriter(memory, archive)`` stores each action through ``memory.actions``
(Redis or Valkey) and queues the stored copy, with its final ``action_id`` and
``stored_at``, for the SQL archive. The archive is written in one transaction
when the buffer reaches ``buffer_size`` rows, when ``interval`` seconds have
passed since the last archive write (checked on every write and by
``flush_if_needed``), on ``flush()``, ``close()``, leaving ``with`` and at
interpreter exit. The buffer is cleared only after the archive write
succeeded: a failed write keeps its rows for the next try. Re-archiving rows
that are already archived inserts nothing (``Archive.write`` skips known ids).

``background=True`` moves all I/O to a daemon thread fed by a bounded queue (``add``
returns ``None`` unless it is full); ``archive_thread=True`` moves the due archive
writes to a thread of their own. See ``docs/dualwrite.md``.

Failover (``docs/failover.md``): unless ``strict=True``, a write that cannot
reach Redis still succeeds. Its actions get their ids here, go to a durable
replay journal on disk and to the archive buffer; ``by_type``, ``by_target``,
``timeline``, ``recent``, ``high_reward`` and ``get`` are answered by the
archive meanwhile. Every ``retry_interval`` seconds a call probes Redis; when it
answers, the journal is replayed (every index written) before anything else.
A journal left by a crashed process is replayed by the next writer that opens
it. With ``strict=True`` connection errors are raised (``Unavailable``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.config import DEFAULT_BUFFER_SIZE as DEFAULT_BUFFER_SIZE
from agentmem.config import DEFAULT_INTERVAL as DEFAULT_INTERVAL
from agentmem.config import DEFAULT_QUEUE_SIZE as DEFAULT_QUEUE_SIZE
from agentmem.config import DEFAULT_RETRY_INTERVAL, DualWriteSettings, read
from agentmem.dualwrite.archiver import Archiver, ArchiveSide, as_agentmem_error
from agentmem.dualwrite.background import Item, Stop, run, wait_for_thread
from agentmem.dualwrite.discarding import discard
from agentmem.dualwrite.failover import Failover, Replay, default_journal_path, own_journal
from agentmem.dualwrite.fallback import FallbackReads
from agentmem.dualwrite.ids import held
from agentmem.dualwrite.journal import Journal
from agentmem.dualwrite.locks import Pausing, WriterLock
from agentmem.dualwrite.outbox import DrainReport, Outbox, drain
from agentmem.dualwrite.restartwatch import RestartWatch
from agentmem.dualwrite.sendahead import SendAhead
from agentmem.dualwrite.signals import exit_on_sigterm
from agentmem.errors import (
    AgentMemError,
    ConfigError,
    DuplicateId,
    InvalidInput,
    Unavailable,
    WriteError,
)
from agentmem.model.records import Action
from agentmem.repository.base import build

T = TypeVar("T")
Durability = Literal["buffered", "redis", "archived"]
log = logging.getLogger("agentmem.dualwrite.writer")



class DualWriter(SendAhead, ArchiveSide, FallbackReads, RestartWatch):
    """Store actions in Redis and archive them to SQL in bulk; see the module doc."""

    def __init__(
        self,
        memory: Memory,
        archive: Archive,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        interval: float = DEFAULT_INTERVAL,
        background: bool = False,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        strict: bool = False,
        journal: str | os.PathLike[str] | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        durability: Durability | None = None,
        lease: float = 30.0,
        archive_thread: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = read(DualWriteSettings, {
            "buffer_size": buffer_size, "interval": interval, "background": background,
            "queue_size": queue_size, "strict": strict, "journal": journal,
            "retry_interval": retry_interval, "durability": durability, "lease": lease,
            "archive_thread": archive_thread}, env={})
        if strict and journal is not None:
            raise ConfigError("strict=True raises connection errors: it keeps no journal")
        mode = settings.durability or ("buffered" if settings.background else "redis")
        if mode != "buffered" and settings.background:
            raise ConfigError(
                f"durability={mode!r} cannot have background=True: the background thread "
                "returns before Redis has the action (durability='buffered')")
        if settings.archive_thread and mode != "redis":
            raise ConfigError(
                f"archive_thread=True needs durability='redis' (got {mode!r}): 'archived' "
                "writes the archive before a call returns, 'buffered' has its own thread")
        self.durability: Durability = mode
        """When a write returns (``docs/durability.md``)."""
        background = mode == "buffered"
        self.memory = memory
        self.archive = archive
        self.settings = settings
        """The writer's options (:class:`~agentmem.DualWriteSettings`)."""
        self.buffer_size = settings.buffer_size
        self.interval = settings.interval
        self.background = background
        self._clock = clock
        self._lock = threading.RLock()  # guards _buffer and _last_write
        self._pausing = Pausing()  # per thread: inside archive_paused() (locks.py)
        self._archive_lock = WriterLock(self._pausing, "_archive_lock")  # archiver.py
        self._sql = threading.RLock()  # the archive's SQL statements of this writer
        self._archive_error: AgentMemError | None = None  # the archiver's, until healed
        self._buffer: list[Action] = []  # stored in Redis, not yet archived
        self._discarded: set[str] = set()  # outbox keys of discarded actions
        self._archived_listed: set[str] = set()  # archived by the thread, still listed
        self._last_write = clock()
        self._closed = False
        self._error: AgentMemError | None = None  # kept by the thread, raised by the caller
        self._error_lock = threading.Lock()
        self._queue: queue.Queue[Item] | None = None
        self._thread: threading.Thread | None = None
        self._unsent: list[Action] = []  # background: taken from the queue, not in Redis yet
        self.accepted = 0
        """Actions of ``add``/``add_many``/``record`` calls the writer has taken on: stored
        in Redis (or refused by it), journaled, or queued for the thread. A call cut short
        by Ctrl-C or SIGTERM counts those it took on before (``docs/dualwrite.md``)."""
        self.strict = strict
        self._io = WriterLock(self._pausing, "_io")  # a Redis write, replay or fallback read
        self.failover: Failover | None = None
        self.outbox: Outbox | None = Outbox(memory, lease=settings.lease)
        """This writer's outbox (``docs/durability.md``), on one server or a cluster."""
        name = self.outbox.name
        if not strict:
            own = own_journal(default_journal_path(archive), name) \
                if journal is None else Journal(journal)
            self.failover = Failover(memory, archive, own,
                                     retry_interval=settings.retry_interval, clock=clock)
            self.failover.own_outbox = self.outbox.key
        self.recovered = self._drain_stopped()
        """What opening drained from the outboxes of writers that stopped."""
        self._archiver = Archiver(self) if settings.archive_thread else None
        if background:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(target=run, args=(self,), name="agentmem-dualwrite",
                                            daemon=True)
            self._thread.start()
        atexit.register(self._close_at_exit)
        exit_on_sigterm()

    def _drain_stopped(self) -> DrainReport:
        """Archive what writers that stopped left in their outboxes, and seed the retired
        marks of a Redis that lost its data from the archive (at open)."""
        if self.outbox is None:
            return DrainReport()
        try:
            self._seed()  # and arm the restart guard (restartwatch.py)
            self._check_eviction()
            return drain(self.memory, self.archive, skip=self.outbox.key)
        except Unavailable as exc:
            if self.strict:
                raise
            log.warning("Redis is unreachable (%s): the outboxes of stopped writers are "
                        "drained later (agentmem archive, or the next writer)", exc)
            return DrainReport()

    # -- the caller's side ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Actions stored in Redis (or sent ahead) and not archived yet (blocking mode:
        exact)."""
        with self._lock:
            return len(self._buffer) + self.in_flight

    def discard(self, match: Callable[[Action], bool],
                remove: Callable[[Action], object]) -> list[Action]:
        """Drop the actions this writer holds and has not archived that ``match``
        (:func:`agentmem.dualwrite.discarding.discard`); returns them."""
        if self._closed:
            raise ConfigError("this DualWriter is closed")
        self._pausing.refuse("discard")
        with self._io:
            self._settle()
        dropped = discard(self, match, remove)
        self._raise_kept()  # an error kept for the caller: raised after the discard
        return dropped

    def add(self, action: Action) -> Action | None:
        """Store one action in Redis and queue it for the archive.

        Blocking mode: returns the stored action (final id and write time).
        Background mode: returns ``None`` at once (the id is decided later, by
        the server); waits only while the queue is full.
        """
        out = self.add_many([action])
        return None if out is None else out[0]

    def add_many(self, actions: Iterable[Action]) -> list[Action] | None:
        """Store many actions in Redis (one call) and queue them for the archive.

        Blocking mode: returns the stored actions. Background mode: ``None``.
        """
        self._check_open()
        try:
            items = list(actions)
        except TypeError:  # None, a number: not an iterable
            raise InvalidInput("add_many takes an iterable of actions, "
                               f"got {type(actions).__name__}") from None
        for n, a in enumerate(items):
            if not isinstance(a, Action):
                raise InvalidInput(f"record {n}: expected an Action, got {type(a).__name__}")
        if self._queue is not None:
            for n, a in enumerate(items):  # refuse now what the thread would refuse later
                try:
                    self.memory.actions.check(a)
                except InvalidInput as exc:
                    raise InvalidInput(f"record {n}: {exc}") from None
            for a in items:
                self._queue.put(a)  # blocks while the queue is full: backpressure
                self.accepted += 1  # (interrupted in put: not queued, not counted)
            return None
        with self._io:
            self._settle()  # the write sent ahead first (send_many)
            self._store_refused()
            stored, err = self._store(items)
            with self._lock:
                self._buffer.extend(stored)
                self.accepted += len(items)
                due = err is None and self._due()
            if self.durability == "archived" and stored:
                with self._archive_lock:
                    self._archive_write()  # returns once the archive has committed
            elif due:
                self._archive_due()
        if err is not None:
            raise err  # the records that were stored are archived too
        self._raise_kept()  # what the write sent ahead raised
        return stored

    def record(self, **fields: Any) -> Action | None:
        """Build an :class:`Action` from keyword fields and :meth:`add` it."""
        return self.add(build(Action, **fields))

    @contextlib.contextmanager
    def archive_paused(self) -> Iterator[None]:
        """A block in which none of this writer's archive writes runs (its archive or
        background thread waits before its SQL statements), for other rows of the same
        archive written in their own transaction that must not race them (the AgentFarm
        drop-in's ``agents`` rows, which an archived action may have written bare). The
        writer's Redis calls go on meanwhile: the block waits for an SQL statement of the
        writer under way, never for Redis. No call of the writer may be made inside it
        (:class:`ConfigError`: its threads may be waiting for the block's end)."""
        with self._pausing.block(self._sql):
            yield

    def flush(self) -> int:
        """Archive everything queued; return the rows inserted (background mode: 0).

        Background mode: waits until everything queued before the call is in
        Redis and the archive, then raises the thread's error if there was one.
        """
        if self._queue is None:
            with self._io:
                self._settle()
                self._store_refused()
                self._recover()
                with self._archive_lock:  # after the archiver's write in progress
                    n = self._archive_write()
            self._raise_kept()  # what the write sent ahead raised
            return n
        wait_for_thread(self)  # drain first, so that a kept error never stops a drain
        self._raise_kept()
        return 0

    def flush_if_needed(self) -> int:
        """Archive the buffer if ``interval`` seconds have passed since the last write.

        Meant to be called once per step, like AgentFarm's. Background mode: the
        thread does this by itself; this only raises its kept error.
        """
        if self._queue is None:
            self._raise_archive_error()  # the archiver's, as the next add would
            n = 0
            with self._io:
                self._settle()
                self._store_refused()
                self._recover()
                with self._lock:
                    due = bool(self._buffer) and \
                        self._clock() - self._last_write >= self.interval
                if due:
                    n = self._archive_due()
            self._raise_kept()  # what the write sent ahead raised
            return n
        self._raise_kept()
        return 0

    def close(self) -> None:
        """Archive everything, stop the thread, unregister the exit hook.

        If the final archive write fails, the error is raised and the writer
        stays open with its rows (close again, or the exit hook retries).
        """
        if self._closed:
            return
        if self._queue is None:
            with self._io:
                self._settle()
                self._recover(force=True)
        self.flush()
        self._closed = True
        if self._queue is not None and self._thread is not None:
            self._queue.put(Stop())
            self._thread.join(timeout=30)
        if self._archiver is not None:
            self._archiver.stop()
        if self.failover is not None:
            self.failover.journal.close()
        if self.outbox is not None:
            with contextlib.suppress(AgentMemError):  # else the lease expires by itself
                self.outbox.release()
        atexit.unregister(self._close_at_exit)

    def __enter__(self) -> DualWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this DualWriter is closed")
        self._pausing.refuse("a write")  # background mode: a full queue waits for the block
        self._raise_kept()
        self._raise_archive_error()

    def _raise_kept(self) -> None:
        with self._error_lock:
            err, self._error = self._error, None
        if err is not None:
            raise err

    def _keep(self, exc: BaseException, what: str) -> None:
        with self._error_lock:
            if self._error is None:  # the first error is the informative one
                self._error = as_agentmem_error(exc, what)

    def _stored_part(self, items: list[Action], exc: WriteError) -> list[Action]:
        """The records of a partly refused write that were stored, read back from Redis.

        ``exc.stored`` lists the ids of the records not in ``exc.failed``, in input order.
        """
        kept = [a for n, a in enumerate(items) if n not in exc.failed]
        if len(kept) != len(exc.stored):  # which id is whose is unknown: the outbox lists
            return []  # them, and the next archive write reads them from Redis
        keys = [(a.agent_id, rid) for a, rid in zip(kept, exc.stored, strict=True)]
        found = held(self.memory, keys)
        # one Redis no longer holds (lost with its data, or expired, since the write): it
        # was stored and acknowledged all the same, so it is archived under its id
        now = int(time.time())
        return [found.get(k) or a.model_copy(update={"action_id": k[1], "stored_at": now})
                for a, k in zip(kept, keys, strict=True)]

    # -- failover -----------------------------------------------------------------------------

    def _store(self, items: list[Action]) -> tuple[list[Action], WriteError | None]:
        """Store ``items`` in Redis, or divert them while it is unreachable.

        Returns what was stored (to archive) and the error to raise for what was
        refused. Called with ``_io`` held.
        """
        fo = self.failover
        if self._restarted():  # Redis lost its data since the marks were seeded
            self._after_restart()
        if fo is not None and fo.needs_replay:
            self._recover()
            if fo.down:
                return self._divert(items)
        try:
            actions = self.outbox.actions if self.outbox is not None else self.memory.actions
            return actions.add_many(items), None
        except (KeyboardInterrupt, SystemExit) as exc:
            self._interrupted(items, exc)
            raise
        except Unavailable as exc:
            if fo is None:
                raise
            with self._lock:
                fo.mark_down(exc, self._buffer)
            return self._divert(items)
        except WriteError as exc:
            try:  # calls refused for lost retired marks: journaled (restartwatch.py)
                return self._journal_unseeded(items, self._stored_part(items, exc), exc)
            except (KeyboardInterrupt, SystemExit) as stop:  # stored in part: journaled,
                self._interrupted(items, stop)  # the replay finds what is stored
                raise
            except Unavailable as again:
                if fo is None:
                    raise
                # stored in Redis, unreadable now: journaled too, the replay finds them there
                with self._lock:
                    fo.mark_down(again, self._buffer)
                kept = [a for n, a in enumerate(items) if n not in exc.failed]
                return self._divert(kept)[0], exc

    def _interrupted(self, items: list[Action], exc: BaseException) -> None:
        """A Redis write cut short by Ctrl-C or SIGTERM while in flight: the script may
        have run (its reply is lost, the connection dropped). Handled as a write whose
        reply was lost (``docs/failover.md``): the actions are journaled under the ids
        Redis gives them and buffered for the archive, so the replay finds them stored
        (or stores them) and a caller that sends them again (the AgentFarm drop-in's exit
        hook) sees them taken on (``accepted``) instead of storing second copies. Strict
        mode keeps no journal: the outcome stays unknown."""
        fo = self.failover
        if fo is None:
            return
        try:
            with self._lock:
                fo.mark_down(Unavailable(f"a Redis write was interrupted "
                                         f"({type(exc).__name__}) before its reply"),
                             self._buffer)
                diverted, _ = self._divert(items)  # refused ids: taken, as Redis refuses
                self._buffer.extend(diverted)
                self.accepted += len(items)
        except Exception:  # the interruption propagates; the caller may send them again
            log.exception("an interrupted Redis write could not be journaled")

    def _divert(self, items: list[Action]) -> tuple[list[Action], WriteError | None]:
        assert self.failover is not None
        out, failed = self.failover.divert(items)
        if not failed:
            return out, None
        n, reason = min(failed.items())
        return out, DuplicateId(
            f"{len(failed)} of {len(items)} records refused (record {n}: {reason}); the "
            "others were stored (Redis is unreachable: in the replay journal)",
            stored=[str(a.action_id) for a in out], failed=failed)

    def _take_replay(self, done: Replay) -> None:
        """Hand the replayed actions to the archive buffer, under their final ids."""
        with self._archive_lock, self._lock:
            old = set(done.renamed)
            keep = [a for a in self._buffer
                    if (a.simulation_id, a.agent_id, a.action_id) not in old]
            have = {(a.simulation_id, a.agent_id, a.action_id) for a in keep}
            keep.extend(a for a in done.actions
                        if (a.simulation_id, a.agent_id, a.action_id) not in have)
            self._buffer[:] = keep
            self._auto_write()

    @property
    def redis_down(self) -> bool:
        """Whether the last Redis call failed to connect (writes go to the journal)."""
        return self.failover is not None and self.failover.down

    @property
    def journaled(self) -> int:
        """Appends in the replay journal not yet known to be in Redis and the archive."""
        return 0 if self.failover is None else len(self.failover.journal)

    # -- reads: Redis, or the archive while Redis is unreachable ------------------------------

    def _read(self, from_redis: Callable[[], T], from_archive: Callable[[], T]) -> T:
        self._check_open()
        fo = self.failover
        with self._io:
            self._settle()
            self._raise_kept()
            if fo is not None and fo.needs_replay:
                self._recover()
            if fo is None or not fo.down:
                try:
                    return from_redis()
                except Unavailable as exc:
                    if fo is None:
                        raise
                    with self._lock:
                        fo.mark_down(exc, self._buffer)
            with self._archive_lock:
                self._archive_write()  # the archive must hold everything written so far
            return from_archive()
