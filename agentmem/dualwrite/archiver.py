"""The dual writer's archiver thread: archive writes off the caller's thread.

``DualWriter(..., archive_thread=True)`` (blocking mode, ``durability="redis"``):
when the buffer is due (``buffer_size`` rows, or ``interval`` seconds since the
last archive write), the caller wakes this thread instead of writing the archive
itself, and goes on with its next Redis write while the archive commits. The
caller's waits on Redis and the database's own work then overlap with the other
side's Python.

What stays the caller's:

- the durability contract: a call still returns once Redis holds the action and
  its outbox entry; what the archive has not committed yet is listed in the
  outbox, as before;
- everything while failover is engaged (Redis unreachable, a replay, renames or a
  journal not yet confirmed): the thread does nothing then, and the caller archives
  on its own thread as without the option;
- ``flush()``, ``close()``, reads that fall back to the archive, ``discard``:
  they wait for the thread's write in progress (``DualWriter._archive_lock``) and
  then write on the caller's thread.

One archive write runs at a time (``_archive_lock``): the thread holds it for its
whole write and takes the buffer's lock (``_lock``) only to copy the buffer and,
once the archive committed, to drop what it archived from the buffer's head.
Everything that changes the buffer other than by appending holds
``_archive_lock`` first, so the head the thread archived is still the head it
drops. Lock order everywhere: ``_io``, then ``_archive_lock``, then ``_sql`` (held
around the archive's SQL statements only: ``archive_paused()``), then ``_lock``; the
thread never takes ``_io`` (an earlier version did, and the caller, taking it again at
once for its next write, kept it from the thread for many writes). The thread does
not read the outbox: it acknowledges its copy's keys as the outbox's head, which they
are unless a write's reply was lost, an action was discarded or a drainer claimed the
list; then nothing is dropped and the next archive write, on the caller's thread,
reads the whole outbox (as without the thread).

An error of the thread's write is kept and raised by the writer's next call (or
by ``flush``), unless a later archive write succeeded first; the rows stay
buffered. An unreachable archive is logged and retried after ``interval``, as a
due write on the caller's thread does (``strict=True``: kept and raised). The
buffer is bounded: a write that finds ``2 * buffer_size`` rows buffered archives
on the caller's thread (after the thread's write in progress), which slows the
caller to the archive's pace.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from agentmem.backends.archivedelete import write_updated
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.dualwrite.failover import Failover
from agentmem.dualwrite.locks import WriterLock
from agentmem.dualwrite.outbox import Outbox, read_actions
from agentmem.errors import AgentMemError, BackendError, Unavailable
from agentmem.model.records import Action

__all__ = ["ArchiveSide", "Archiver", "as_agentmem_error"]

log = logging.getLogger("agentmem.dualwrite.archiver")


def as_agentmem_error(exc: BaseException, what: str) -> AgentMemError:
    """``exc`` itself if it is an agentmem error, else a :class:`BackendError` chained to it."""
    if isinstance(exc, AgentMemError):
        return exc
    err = BackendError(f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


class ArchiveSide:
    """The dual writer's archive writes: when one is due, on which thread it runs, and
    how the buffer's head is dropped once it committed; mixed into the dual writer."""

    memory: Memory
    archive: Archive
    outbox: Outbox | None
    failover: Failover | None
    strict: bool
    buffer_size: int
    interval: float
    _clock: Callable[[], float]
    _buffer: list[Action]
    _discarded: set[str]
    _last_write: float
    _lock: threading.RLock
    _archive_lock: WriterLock
    _sql: threading.RLock
    _io: WriterLock
    _error_lock: threading.Lock
    _archive_error: AgentMemError | None
    _listing_needed: bool = False
    """The archive thread's last acknowledgement did not find its keys at the outbox's
    head (a write whose reply was lost, a discarded action, a drainer's claim): the next
    archive write reads the whole outbox, on the caller's thread."""
    _acked: bool = True
    _archived_listed: set[str]
    """Outbox keys of actions the archive thread archived and could not drop from the
    outbox (not its head): the caller's next write drops them without reading them back
    (they may have left Redis since, archived)."""
    _archiver: Archiver | None

    def _settle(self) -> None:
        """Read the reply of a write sent ahead (:mod:`agentmem.dualwrite.sendahead`)."""

    def _keep_archive_error(self, exc: BaseException) -> None:
        with self._error_lock:
            if self._archive_error is None:
                self._archive_error = as_agentmem_error(exc, "the archive write failed")

    def _raise_archive_error(self) -> None:
        with self._error_lock:
            err, self._archive_error = self._archive_error, None
        if err is not None:
            raise err

    def _due(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self.buffer_size
            or self._clock() - self._last_write >= self.interval)

    def _failover_busy(self) -> bool:
        """Whether failover has work the archive write must do (the caller's thread)."""
        fo = self.failover
        return fo is not None and bool(fo.down or fo.needs_replay or fo.pending_renames
                                       or fo.unconfirmed)

    def _archive_due(self) -> int:
        """A due archive write: the archiver's (woken; bounded at twice ``buffer_size``
        rows), or on this thread. Called with ``_io`` held, not ``_lock``.

        With the archiver, an error of this thread's write is kept like the archiver's
        (raised by the next call, before it stores anything), never raised by the call
        that stored: the archiver's write it waited for may have dropped rows from the
        buffer's head meanwhile, so ``pending`` could not tell that call's caller (the
        AgentFarm drop-in) that its actions were stored, and it would store them again."""
        if self._archiver is None:
            with self._archive_lock:
                return self._auto_write()
        if not self._failover_busy() and not self._listing_needed:
            with self._lock:
                full = len(self._buffer) >= 2 * self.buffer_size
            if not full:
                self._archiver.wake()
                return 0
        with self._archive_lock:
            try:
                return self._auto_write()
            except Exception as exc:  # the rows stay buffered for the next write
                self._keep_archive_error(exc)
                return 0

    def _archive_write(self) -> int:
        """Archive the buffer and what the outbox lists in one transaction, on this
        thread; called with ``_io`` and ``_archive_lock`` held. A replay's renames are
        applied first and its journal confirmed after."""
        fo = self.failover
        self._settle()  # a write sent ahead: its records are listed in the outbox
        try:
            if fo is not None and fo.pending_renames:
                with self._sql:
                    fo.apply_renames()
            listed, own, extra = self._archive_batch()
        except Exception as exc:
            raise as_agentmem_error(exc, "the archive write failed") from exc
        n = self._archive_commit(listed, own, extra)
        self._listing_needed = False  # the whole outbox was read and dropped
        if fo is not None:
            fo.confirm()  # whatever a replay handed over is archived now
        return n

    def _archive_batch(self) -> tuple[list[str], list[Action], list[Action]]:
        """What the next archive write covers: the keys this writer's outbox lists, the
        buffer, and the listed actions not in the buffer (stored by a write whose reply
        was lost, read from Redis). Called with ``_io`` held, so no write of this writer
        is in flight: every listed key is in the buffer unless its reply was lost. The
        listing is empty while Redis is unreachable (the outbox keeps its keys)."""
        listed: list[str] = []
        if self.outbox is not None and not (self.failover is not None and self.failover.down):
            with contextlib.suppress(Unavailable):
                listed = self.outbox.listed()
        with self._lock:
            own = list(self._buffer)
        if not listed:
            return [], own, []
        assert self.outbox is not None
        with self._lock:
            self._archived_listed.intersection_update(listed)  # the others left the list
            have = {self.outbox.key_of(a) for a in own} | self._discarded | \
                self._archived_listed
        try:
            found, missing = read_actions(self.memory, [k for k in listed if k not in have])
        except Unavailable:
            return [], own, []
        if missing:
            log.warning("%d actions this writer stored were gone from Redis before they were "
                        "archived: %s", len(missing), missing[:5])
        return listed, own, found

    def _archive_commit(self, listed: list[str], own: list[Action], extra: list[Action]
                        ) -> int:
        """Write ``own + extra`` to the archive; then drop ``listed`` from the outbox and
        ``own`` from the buffer's head. Called with ``_archive_lock`` held (the head
        stays), not ``_lock`` (the caller may append meanwhile)."""
        batch = own + extra
        try:
            with self._sql:  # archive_paused() waits for it
                # an archived row of the same action (maintain archived it after an
                # update) is kept: ``own`` holds the versions written, ``extra`` versions
                # read before the row may have been archived
                n = write_updated(self.archive, batch, replace=False) if batch else 0
        except AgentMemError:  # (DuplicateId: the others are archived, these stay)
            raise
        except Exception as exc:
            raise as_agentmem_error(exc, "the archive write failed") from exc
        acked = False
        if listed and self.outbox is not None:
            with contextlib.suppress(Unavailable):  # else still listed: archived again
                acked = self.outbox.ack(listed)  # later, which inserts nothing
                with self._lock:
                    self._discarded.difference_update(listed)  # no longer listed
                    self._archived_listed.difference_update(listed)
        with self._lock:
            del self._buffer[:len(own)]
            self._last_write = self._clock()
        with self._error_lock:
            self._archive_error = None  # an earlier failure is healed: nothing was lost
        self._acked = acked or not listed
        return n

    def _auto_write(self) -> int:
        """An archive write the writer decided on (buffer full, interval passed), with
        ``_archive_lock`` held.

        Unless strict, an unreachable archive is not the agent loop's problem:
        the rows stay buffered (and journaled, if Redis is down) for the next try.
        """
        try:
            return self._archive_write()
        except Unavailable as exc:
            if self.strict:
                raise
            with self._lock:
                log.warning("the archive is unreachable (%s); %d rows kept for the next "
                            "try", exc, len(self._buffer))
                self._last_write = self._clock()
            return 0


class Archiver:
    """The thread that archives a :class:`~agentmem.DualWriter`'s buffer when woken."""

    def __init__(self, writer: ArchiveSide) -> None:
        self._w = writer
        self._wake = threading.Event()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name="agentmem-archiver",
                                       daemon=True)
        self.thread.start()

    def wake(self) -> None:
        """Ask for an archive write (returns at once)."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread after its write in progress."""
        self._stopping = True
        self._wake.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.write_round()
            except BaseException as exc:  # never die silently: keep it for the caller
                self._w._keep_archive_error(exc)

    def write_round(self) -> None:
        """One archive write of the buffer, if it is still due and failover is idle.

        Holds ``_archive_lock``, not ``_io``: the caller's Redis writes go on meanwhile.
        The outbox is not read: the keys of the buffer's copy are acknowledged as the
        outbox's head (the caller's writes since append behind them); when they are not
        its head, nothing is dropped from it and the next archive write reads it whole
        on the caller's thread (``_listing_needed``)."""
        w = self._w
        with w._archive_lock:
            if w._failover_busy() or w._listing_needed:
                return  # the caller archives on its own thread meanwhile
            with w._lock:
                if not w._due():
                    return  # archived by the caller since the wake-up
                own = list(w._buffer)
            keys = [w.outbox.key_of(a) for a in own] if w.outbox is not None else []
            try:
                w._archive_commit(keys, own, [])
                if not w._acked:
                    with w._lock:
                        w._archived_listed.update(keys)
                    w._listing_needed = True
            except Unavailable as exc:
                if w.strict:
                    w._keep_archive_error(exc)
                    return
                with w._lock:
                    log.warning("the archive is unreachable (%s); %d rows kept for the "
                                "next try", exc, len(w._buffer))
                    w._last_write = w._clock()
            except BaseException as exc:  # kept before the lock goes: a flush after
                w._keep_archive_error(exc)  # this write sees it (and may heal it)
