"""Dropping what a dual writer holds and has not archived (the AgentFarm drop-in's
``discard_pending_agents``): see :meth:`agentmem.dualwrite.writer.DualWriter.discard`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentmem.dualwrite.background import wait_for_thread
from agentmem.errors import Unavailable
from agentmem.model.records import Action

if TYPE_CHECKING:
    from agentmem.dualwrite.writer import DualWriter

__all__ = ["discard"]


def discard(w: DualWriter, match: Callable[[Action], bool],
            remove: Callable[[Action], object]) -> list[Action]:
    """Drop the actions ``w`` holds and has not archived that ``match``: those not stored
    in Redis yet are dropped; each stored one is passed to ``remove`` (which deletes it
    from Redis) and dropped once that returned, so one that raised stays (stored and
    archived as usual). Returns the dropped actions. While Redis is unreachable the stored
    ones are not dropped (the journal would replay them): when ``remove`` finds it
    unreachable (``Unavailable``), the writer fails over as a write would
    (``docs/failover.md``), the ones not deleted yet stay, and what was dropped is
    returned; with ``strict=True`` the error is raised instead. Background mode: waits
    until the thread has handled what was queued, without archiving it."""
    if w._queue is not None:
        wait_for_thread(w, archive=False)
    if w.redis_down:
        return []
    dropped: list[Action] = []
    with w._io, w._archive_lock, w._lock:  # after the archiver's write in progress
        unsent = [a for a in w._unsent if match(a)]  # a Redis write kept for retry
        if unsent:
            w._unsent = [a for a in w._unsent if not match(a)]
            dropped += unsent
        refused = [a for a in w._refused if match(a)]  # sent ahead, refused whole
        if refused:
            w._refused = tuple(a for a in w._refused if not match(a))
            dropped += refused
        gone: set[int] = set()
        try:
            for a in w._buffer:
                if match(a):
                    try:
                        remove(a)
                    except Unavailable as exc:
                        fo = w.failover
                        if fo is None:  # strict: connection errors are raised
                            raise
                        fo.mark_down(exc, [b for b in w._buffer  # (w._lock is held)
                                           if id(b) not in gone])
                        break
                    gone.add(id(a))
                    dropped.append(a)
        finally:
            if gone:
                w._buffer[:] = [a for a in w._buffer if id(a) not in gone]
                if w.outbox is not None:  # listed in the outbox: not to be read back
                    w._discarded.update(w.outbox.key_of(a) for a in dropped
                                        if id(a) in gone)
    return dropped
