"""The dual writer's background mode: a daemon thread fed by a bounded queue.

``DualWriter(..., background=True)`` puts actions, :class:`Flush` markers and a
final :class:`Stop` on its queue; :func:`run` takes them in batches, stores them in
Redis (or diverts them while it is down) and archives when due. An error is kept
for the caller (``DualWriter._keep``), never raised in the thread.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from agentmem.errors import AgentMemError, BackendError, InvalidInput
from agentmem.model.records import Action

if TYPE_CHECKING:
    from agentmem.dualwrite.writer import DualWriter

__all__ = ["POLL", "Flush", "Item", "Stop", "run", "run_round", "wait_for_thread"]

POLL = 0.5
"""How long the thread sleeps at most between checks of the interval."""


class Flush:
    """A flush request travelling through the queue behind the actions it covers;
    ``archive=False``: only wait until they are stored in Redis (not archived)."""

    def __init__(self, *, archive: bool = True) -> None:
        self.done = threading.Event()
        self.archive = archive


class Stop:
    """Tells the background thread to end (after everything before it)."""


Item = Action | Flush | Stop


def wait_for_thread(w: DualWriter, *, archive: bool = True) -> None:
    """Wait until the thread has handled everything queued before this call (and, with
    ``archive``, archived it)."""
    assert w._queue is not None
    assert w._thread is not None
    w._pausing.refuse("waiting for the background thread")  # it may wait for the block
    if not w._thread.is_alive():
        raise BackendError("the background writer is not running")
    marker = Flush(archive=archive)
    w._queue.put(marker)
    while not marker.done.wait(0.1):
        if not w._thread.is_alive():
            raise BackendError("the background writer stopped before the flush ended")

def run(w: DualWriter) -> None:
    """The thread: take batches from the queue, store, archive when due, until a Stop."""
    assert w._queue is not None
    q = w._queue
    while True:
        wait = w.interval - (w._clock() - w._last_write)
        try:
            first = q.get(timeout=min(max(wait, 0.01), POLL))
        except queue.Empty:
            first = None
        items: list[Item] = [] if first is None else [first]
        # while Redis writes are being retried, take little more: the queue stays the bound
        room = max(1, w.buffer_size - len(w._unsent))
        while len(items) < room:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        stop = False
        markers: list[Flush] = []
        try:
            for item in items:
                if isinstance(item, Action):
                    w._unsent.append(item)
                elif isinstance(item, Flush):
                    markers.append(item)
                else:
                    stop = True
            run_round(w, force=any(m.archive for m in markers) or stop)
        except BaseException as exc:  # never die silently: keep it for the caller
            w._keep(exc, "the background writer failed")
        finally:
            for m in markers:
                m.done.set()
            for _ in items:
                q.task_done()
        if stop:
            return

def run_round(w: DualWriter, *, force: bool) -> None:
    """Store what was taken in Redis, then archive if due (or forced)."""
    with w._io:
        if force:
            try:
                w._recover(force=True)
            except Exception as exc:
                w._keep(exc, "replaying the journal failed")
        if w._unsent:
            batch = w._unsent
            try:
                stored, err = w._store(batch)
            except InvalidInput as exc:  # cannot happen: add_many checked them
                w._unsent = []
                w._keep(exc, "the background Redis write failed")
                return
            except Exception as exc:
                w._keep(exc, "the background Redis write failed")  # kept for a retry
                return
            w._unsent = []
            with w._lock:
                w._buffer.extend(stored)
            if err is not None:
                # refused records are not retried (they would be refused again)
                w._keep(err, "the background Redis write failed")
                return
        with w._archive_lock:
            with w._lock:
                due = w._due()
            if force:
                try:
                    w._archive_write()
                except AgentMemError as exc:
                    w._keep(exc, "the background archive write failed")
            elif due:
                try:
                    w._auto_write()
                except AgentMemError as exc:
                    w._keep(exc, "the background archive write failed")
