"""The recovery after an outage, and after a restart noticed between two calls.

Mixed into :class:`~agentmem.dualwrite.writer.DualWriter`. A Redis that comes back after
an outage (the writer found it unreachable) is probed, its retired marks seeded again
(:func:`~agentmem.dualwrite.ids.seed_retired`: from the archive when it lost them, and
from the writer's buffer of acknowledged actions it lacks) and the journal replayed.

A Redis that restarted empty **between two calls** is not unreachable: the pool connects
again without an error. The runner's restart guard (:mod:`agentmem.backends.restarts`),
armed after each seeding, notices it on the new connection and refuses the writer's
writes of actions until the marks are seeded again (a flush or an eviction of the
marker, without a reconnection, is refused by the write script itself, which checks the
marker's token). The writer checks the guard before
each write; a write the guard refused is handled as a write during an outage (journaled,
acknowledged), and either way the writer recovers at once: seeds the marks, re-arms the
guard, replays the journal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentmem.dualwrite.ids import eviction_policy, not_held, seed, watch_restarts
from agentmem.errors import AgentMemError, DuplicateId, Unavailable, WriteError

if TYPE_CHECKING:
    from agentmem.backends.redis import Memory
    from agentmem.backends.sql import Archive
    from agentmem.dualwrite.failover import Failover, Replay
    from agentmem.dualwrite.outbox import Outbox
    from agentmem.model.records import Action

__all__ = ["RestartWatch"]

log = logging.getLogger("agentmem.dualwrite")


class RestartWatch:
    """Seeding the retired marks, watching for a restart, recovering; see the module."""

    memory: Memory
    archive: Archive
    failover: Failover | None
    outbox: Outbox | None
    _lock: threading.RLock
    _buffer: list[Action]
    _trips_seen: int = -1  # the guard's trips when this writer last seeded (-1: never)
    _trips_forced: int = -1  # the trips a recovery was forced for
    _seeded_tokens: tuple[bytes, ...] | None = None  # the markers as this writer last armed

    _take_replay: Callable[[Replay], None]
    _divert: Callable[[list[Action]], tuple[list[Action], WriteError | None]]

    def _seed(self) -> None:
        """Seed the retired marks (from the archive if Redis lost them, and from the
        buffer's actions Redis lacks: acknowledged, maybe not archived yet), then arm the
        guard; Unavailable when Redis lost its data again meanwhile (the guard stays
        tripped)."""
        guard: Any = self.memory.runner.guard
        trips = guard.trips
        with self._lock:
            buffered = list(self._buffer)
        seeded = seed(self.memory, self.archive,  # read by the seeding, after its sentinel
                      lambda: not_held(self.memory, buffered) if buffered else [],
                      self._seeded_tokens)
        if not watch_restarts(self.memory, seeded):
            raise Unavailable("Redis lost its data again, or restarted, while the retired "
                              "marks were seeded")
        self._trips_seen = trips
        self._seeded_tokens = seeded.tokens

    def _check_eviction(self) -> None:
        """Warn when the server may evict keys without a TTL (``maxmemory-policy``
        ``allkeys-*``): the retired marks and the marker have none, and a Redis that evicts
        them gives ids again (docs/durability.md). Unreadable (``CONFIG`` refused, a
        cluster): nothing said."""
        if getattr(self.memory.runner, "cluster", False):
            return
        try:
            policy = eviction_policy(self.memory)
        except AgentMemError:
            return
        if policy is not None and policy.startswith("allkeys"):
            log.warning("Redis evicts any key at maxmemory (maxmemory-policy %s): the "
                        "retired marks that keep a dual writer's ids unique may be evicted, "
                        "and ids given again; use noeviction or a volatile-* policy", policy)

    def _journal_unseeded(self, items: list[Action], stored: list[Action],
                          exc: WriteError) -> tuple[list[Action], WriteError | None]:
        """A write some of whose calls the script refused for lost retired marks
        (``UNSEEDED``: a flush or an eviction of the marker between the calls of this
        write; the calls before it were stored): those calls wrote nothing, so their
        actions are journaled (acknowledged) as during an outage, and the writer seeds the
        marks again before its next write. Returns what to archive (``stored`` and the
        journaled) and the error of the other refusals, if any. Strict: ``exc`` as is."""
        fo = self.failover
        lost = sorted(n for n, why in exc.failed.items() if why.startswith("UNSEEDED"))
        if not lost or fo is None:
            return stored, exc
        with self._lock:
            fo.mark_down(Unavailable(exc.failed[lost[0]]), [*self._buffer, *stored])
        journaled, refused = self._divert([items[n] for n in lost])
        failed = {n: why for n, why in exc.failed.items() if n not in set(lost)}
        if refused is not None:  # an explicit id the writer knows is taken
            failed.update({lost[i]: why for i, why in refused.failed.items()})
        if not failed:
            return stored + journaled, None
        ids = iter(exc.stored)
        new = iter(a.action_id for a in journaled)
        at = set(lost)
        stored_ids = [str(next(new) if n in at else next(ids)) for n in range(len(items))
                      if n not in failed and (n in at or n not in exc.failed)]
        n, reason = min(failed.items())
        cls = DuplicateId if all(w.startswith("EXISTS") for w in failed.values()) \
            else WriteError
        out = cls(f"{len(failed)} of {len(items)} records refused (record {n}: {reason}); "
                  "the others were stored or journaled", stored=stored_ids, failed=failed)
        out.__cause__ = exc
        return stored + journaled, out

    def _restarted(self) -> bool:
        """Whether Redis lost its data since this writer last seeded (the guard tripped,
        or another writer on the same connection re-armed it since)."""
        if self.outbox is None:
            return False
        guard: Any = self.memory.runner.guard
        return bool(guard.tripped) or guard.trips != self._trips_seen

    def _after_restart(self) -> None:
        """Before a write, when :meth:`_restarted`: seed again (strict: now, raising what
        stops it), else recover at once (once per trip; a Redis down again is probed at
        the usual interval, and writes go to the journal meanwhile)."""
        fo = self.failover
        if fo is None:
            self._seed()
            return
        trips = self.memory.runner.guard.trips
        if fo.down and trips == self._trips_forced:
            return
        self._trips_forced = trips
        with self._lock:
            fo.mark_down(Unavailable("Redis lost its data since the retired marks were "
                                     "seeded (a restart without persistence?)"), self._buffer)
        self._recover(force=True)

    def _recover(self, *, force: bool = False) -> None:
        """Replay the journal if Redis answers (when a probe is due), the retired marks
        seeded first; called with ``_io``."""
        fo = self.failover
        if fo is None or not fo.needs_replay:
            return
        done = fo.recover(force=force, prepare=self._seed if self.outbox is not None else None)
        if done is not None:
            self._take_replay(done)
