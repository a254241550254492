"""The dual writer's locks, and the block in which its caller writes other rows.

Lock order (``archiver.py``): ``_io`` (a Redis write, replay or fallback read),
then ``_archive_lock`` (one archive write at a time), then ``_sql`` (the archive's
SQL statements of the writer), then ``_lock`` (the buffer).

:meth:`DualWriter.archive_paused` holds ``_sql`` only: rows of other tables of the
same archive (the AgentFarm drop-in's ``agents`` rows) are written with no SQL
statement of the writer under way, while its Redis calls (a hung server, the
outbox) go on. A writer call from inside the block would take ``_io`` or
``_archive_lock`` out of order, while a thread of the writer holding them may be
waiting for ``_sql``: :class:`WriterLock` raises :class:`ConfigError` then instead
of waiting for ever. Imports nothing of agentmem but its errors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from agentmem.errors import ConfigError

__all__ = ["Pausing", "WriterLock"]


class Pausing(threading.local):
    """Per thread: whether it is inside the writer's ``archive_paused()`` block."""

    active: bool = False

    def refuse(self, what: str) -> None:
        """Raise :class:`ConfigError` if this thread is inside the block."""
        if self.active:
            raise ConfigError(
                "a DualWriter call inside its archive_paused() block: the block is for "
                f"rows written to the archive directly; call the writer after it ({what})")

    @contextlib.contextmanager
    def block(self, sql: threading.RLock) -> Iterator[None]:
        """Hold ``sql`` with this thread marked as inside the block."""
        with sql:
            before, self.active = self.active, True
            try:
                yield
            finally:
                self.active = before


class WriterLock:
    """A re-entrant lock of the writer (``_io``, ``_archive_lock``) that a thread inside
    ``archive_paused()`` may not take: it raises :class:`ConfigError` instead."""

    def __init__(self, pausing: Pausing, name: str) -> None:
        self._lock = threading.RLock()
        self._pausing = pausing
        self._name = name

    def __enter__(self) -> WriterLock:
        self._pausing.refuse(self._name)
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
