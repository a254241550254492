"""Writes sent ahead: :meth:`DualWriter.send_many` sends actions to Redis and returns
before the reply, which the writer reads at its next call (``docs/dualwrite.md``).

The server runs the write while the caller goes on (the AgentFarm drop-in's next
step), so a step costs the caller its own work, not also the server's. One write is in
flight at a time. Its reply is read, and its outcome handled, before anything else the
writer does (``add_many``, the next ``send_many``, ``flush``, ``close``, reads,
``discard``): the stored actions join the archive buffer; a refusal (``WriteError``) or
another error is raised by that call, after its own work, as the background thread's
errors are. A read through the same :class:`~agentmem.backends.redis.Memory` reads the
reply first too (:meth:`~agentmem.backends.redis.RedisRunner.settle`), so it sees the
write. A reply that never came back (the connection dropped, or Ctrl-C) is a write
whose reply was lost (``docs/failover.md``): the actions are journaled and replayed.

May import: ``agentmem.backends``, ``agentmem.errors``, ``agentmem.model``, and this
package's ``failover`` (types only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentmem.backends.inflight import Pending
from agentmem.dualwrite.locks import WriterLock
from agentmem.errors import (
    AgentMemError,
    BackendError,
    DuplicateId,
    InvalidInput,
    Unavailable,
    WriteError,
)
from agentmem.model.records import Action

if TYPE_CHECKING:
    from agentmem.backends.redis import Memory
    from agentmem.dualwrite.failover import Failover
    from agentmem.dualwrite.outbox import Outbox

__all__ = ["SendAhead"]

log = logging.getLogger("agentmem.dualwrite.sendahead")


class SendAhead:
    """``send_many`` and the reading of its reply; mixed into the dual writer."""

    memory: Memory
    failover: Failover | None
    outbox: Outbox | None
    durability: str
    accepted: int
    _io: WriterLock
    _lock: threading.RLock
    _buffer: list[Action]
    _queue: Any
    _inflight: tuple[list[Action], Pending[list[Action]] | None] | None = None
    _refused: tuple[Action, ...] = ()  # a write sent ahead refused whole: to store again
    _store: Callable[[list[Action]], tuple[list[Action], WriteError | None]]
    _check_open: Callable[[], None]
    _raise_kept: Callable[[], None]
    close: Callable[[], None]
    _keep: Callable[[BaseException, str], None]
    _due: Callable[[], bool]
    _archive_due: Callable[[], int]
    _divert: Callable[[list[Action]], tuple[list[Action], WriteError | None]]
    _stored_part: Callable[[list[Action], WriteError], list[Action]]
    add_many: Callable[[Iterable[Action]], list[Action] | None]
    _restarted: Callable[[], bool]

    def send_many(self, actions: Iterable[Action]) -> None:
        """Send many actions to Redis (one call) and return before the reply.

        Every action is validated first (``InvalidInput``, nothing sent). The reply is
        read by the writer's next call (or a read through the same store), which raises
        what this write's reply raised (``WriteError`` for refused records, after the
        stored ones joined the archive buffer; a write Redis refused whole, such as
        ``OOM``, is raised and its actions stored by the next write, ``flush`` or
        ``close``; so are the records of those of its calls the server refused
        whole). The actions count in ``accepted`` once taken on, before the first byte
        is sent: a call cut short while sending (Ctrl-C, SIGTERM) or unable to send
        journals them. Where a write cannot be sent ahead (background mode,
        ``"archived"``, ``strict=True``, a Redis Cluster, Redis unreachable or a replay
        due), this is :meth:`add_many`.
        """
        self._check_open()
        items = list(actions)
        for n, a in enumerate(items):
            if not isinstance(a, Action):
                raise InvalidInput(f"record {n}: expected an Action, got {type(a).__name__}")
        repo: Any = self.outbox.actions if self.outbox is not None else self.memory.actions
        start = getattr(repo.runner, "start", None)
        fo = self.failover
        if self._queue is not None or self.durability == "archived" or start is None \
                or fo is None:  # strict: a lost reply must be raised at the call
            self.add_many(items)
            return
        plan = type(repo).add_many.build(repo, items)  # bad input raises here
        plan = replace(plan, calls=list(plan.calls))  # built while the last write runs
        with self._io:
            self._settle()
            self._store_refused()
            if fo.down or fo.needs_replay or self._restarted():
                self.add_many(items)  # recovers, or journals while Redis is unreachable
                return
            with self._lock:
                due = self._due()
            if due:  # before the send: the archive reads the outbox, which lists the
                self._archive_due()  # write in flight's records (not buffered yet)
            self._inflight = (items, None)  # taken on: sent, journaled, or both
            with self._lock:
                self.accepted += len(items)
            try:
                self._inflight = (items, start(plan))
            except BaseException as exc:
                self._inflight = None
                if not isinstance(exc, (Unavailable, KeyboardInterrupt, SystemExit)):
                    with self._lock:  # refused before anything was sent (a layout error)
                        self.accepted -= len(items)
                    raise
                # not sent, or sent in part, or sent and cut short: journaled, and the
                # replay stores those Redis lacks (docs/failover.md)
                lost = exc if isinstance(exc, Unavailable) else Unavailable(
                    f"a write sent ahead was interrupted ({type(exc).__name__}) while it "
                    "was sent")
                refused = self._lost(items, lost)
                if not isinstance(exc, Unavailable):
                    raise
                if refused is not None:
                    raise refused from None
        self._raise_kept()

    def _settle(self) -> None:
        """Read the reply of the write in flight, if any (called with ``_io`` held): its
        stored actions join the archive buffer; its error is kept for the caller; the
        actions of a write refused whole wait for the next write or flush, which stores
        them first or raises the refusal (``_store_refused``)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        items, pending = inflight
        fo = self.failover
        try:
            if pending is None:  # cut short between the send and its bookkeeping
                raise Unavailable("a write sent ahead was cut short: its reply is unknown")
            stored = pending.result()
        except WriteError as exc:
            try:
                stored = self._stored_part(items, exc)
            except Unavailable as again:
                rest = self._wait_refused(items, exc)
                if fo is None:
                    self._keep(again, "a write sent ahead was refused in part")
                    return
                self._lost([a for n, a in enumerate(items) if n not in exc.failed], again)
                if rest is not None:
                    self._keep(rest, "a write sent ahead was refused in part")
                return
            except BaseException as stop:  # Ctrl-C or SIGTERM while the stored part is
                self._wait_refused(items, exc)  # read back: it is journaled (the replay
                if fo is not None:  # finds it); the records refused whole wait
                    self._lost([a for n, a in enumerate(items) if n not in exc.failed],
                               Unavailable(f"a write sent ahead was interrupted "
                                           f"({type(stop).__name__})"))
                raise
            rest = self._wait_refused(items, exc)
            if rest is not None:
                self._keep(rest, "a write sent ahead was refused in part")
        except Unavailable as exc:  # its reply was lost: the write may have run
            if fo is None:  # strict: no journal, the outcome stays unknown
                self._keep(exc, "a write sent ahead lost its reply")
                return
            refused = self._lost(items, exc)
            if refused is not None:
                self._keep(refused, "a write sent ahead lost its reply")
            return
        except AgentMemError:  # refused whole (OOM, BUSY, ...): nothing stored; the next
            self._refused = (*self._refused, *items)  # write stores them or raises why not
            return
        except BaseException as exc:  # Ctrl-C or SIGTERM while its reply was read
            if fo is not None:
                self._lost(items, Unavailable(f"the reply of a write sent ahead was "
                                              f"interrupted ({type(exc).__name__})"))
            raise
        with self._lock:
            self._buffer.extend(stored)

    def _store_refused(self) -> None:
        """Store the actions of a write sent ahead that Redis refused whole (called with
        ``_io`` held, before a new write): they were taken on (``accepted``), so they are
        stored before anything newer; a refusal again is raised and keeps them."""
        if not self._refused:
            return
        again = list(self._refused)
        before = self.accepted
        try:
            stored, err = self._store(again)
        except (KeyboardInterrupt, SystemExit):
            if self.accepted != before:  # journaled (_interrupted), counted a second time
                with self._lock:
                    self.accepted = before
                self._refused = ()
            raise
        self._refused = ()
        with self._lock:
            self._buffer.extend(stored)
        rest = None if err is None else self._wait_refused(again, err)
        if rest is not None:  # records refused for themselves (positions in the retry)
            raise rest
        if self._refused:  # refused whole again, in part: they wait, and the call says so
            why = next(iter(err.failed.values())) if err is not None else ""
            raise BackendError(f"Redis refused {len(self._refused)} of the {len(again)} "
                               f"actions waiting to be stored again ({why}); they wait for "
                               "the next write, flush or close")

    def _close_at_exit(self) -> None:
        """The exit hook: ``close()``. When it fails with actions still waiting to be
        stored again (Redis refuses them: OOM), they are journaled first (under the ids
        Redis would give them), so that the next writer on this archive replays them
        into Redis and archives them; the failure is raised (printed) as before."""
        try:
            self.close()
        except BaseException:
            fo, waiting = self.failover, list(self._refused)
            if waiting and fo is not None:
                with self._io:
                    self._refused = ()
                    self._lost(waiting, Unavailable("Redis refused the actions waiting at exit"))
                log.error("%d actions Redis refused at exit are in the replay journal %s: "
                          "the next writer on this archive stores them", len(waiting),
                          fo.journal.path)
            raise

    def _wait_refused(self, items: list[Action], exc: WriteError) -> WriteError | None:
        """Of the records of ``items`` that ``exc`` refused, those of a call the server
        refused whole (``OOM``, ``BUSY``, ...) wait for the next write, as a write refused
        whole does; returns the error for the records refused for themselves (a taken id,
        a key of another type), if any."""
        whole = sorted(n for n, why in exc.failed.items() if not why.startswith(RECORD_REASONS))
        if whole:
            self._refused = (*self._refused, *(items[n] for n in whole))
        if len(whole) == len(exc.failed):
            return None
        return _without(exc, whole, len(items)) if whole else exc

    def _lost(self, items: list[Action], why: Unavailable) -> WriteError | None:
        """Actions of a write whose reply was lost (``why``): Redis is marked down, and
        they are journaled under the ids Redis would give them and buffered for the
        archive (the replay finds them stored, or stores them). Returns the refusal of
        ids already taken."""
        fo = self.failover
        assert fo is not None
        with self._lock:
            fo.mark_down(why, self._buffer)
            diverted, refused = self._divert(items)
            self._buffer.extend(diverted)
        return refused

    @property
    def in_flight(self) -> int:
        """Actions sent ahead whose reply is not read yet, or that Redis refused whole
        and the next write stores."""
        inflight = self._inflight
        return (0 if inflight is None else len(inflight[0])) + len(self._refused)


RECORD_REASONS = ("EXISTS", "WRONGTYPE")
"""How the reason of a record refused for itself begins (``WriteError.failed``); any
other reason is its call's, refused whole by the server (``OOM``, ``BUSY``, ...)."""


def _without(exc: WriteError, kept: list[int], total: int) -> WriteError:
    """``exc`` without the records ``kept`` for the next write."""
    failed = {n: why for n, why in exc.failed.items() if n not in set(kept)}
    n, reason = min(failed.items())
    cls = DuplicateId if all(why.startswith("EXISTS") for why in failed.values()) \
        else WriteError
    out = cls(f"{len(failed)} of {total} records refused (record {n}: {reason}); the others "
              "were stored or wait for the next write", stored=exc.stored, failed=failed)
    out.__cause__ = exc
    return out
