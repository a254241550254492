"""Plans sent now and read later: a write whose reply the caller collects afterwards.

:meth:`RedisRunner.start <agentmem.backends.redis.RedisRunner.start>` sends a plan's
calls on a connection of its own and returns a :class:`Pending` at once; the server
runs them while the caller goes on (the AgentFarm drop-in builds the next step). The
replies are read by :meth:`Pending.wait` / :meth:`Pending.result`, and by the runner
before it runs any other plan, so that a read through the same store sees the write
(and plans keep their order: one write in flight at a time).

A pending plan is finished exactly once, by whichever thread gets there first; its
outcome (the parsed result or the error) is kept for :meth:`Pending.result`. A
connection lost after the calls were sent (or the read interrupted by Ctrl-C) is a
reply that was lost: the calls may have run. It is kept as :class:`~agentmem.errors.
Unavailable` with ``reply_lost`` set, for the caller to treat as such
(``docs/failover.md``).

May import: ``redis``, ``agentmem.plans``, ``agentmem.errors`` and the modules of this
package below the runners (``spin``, ``wire``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from agentmem.backends.spin import wait_readable
from agentmem.errors import AgentMemError, Unavailable
from agentmem.plans.plan import Call, FollowUp, Plan

T = TypeVar("T")

__all__ = ["Pending", "ReplyLost"]


class ReplyLost(Unavailable):
    """The calls of a pending plan were sent, and their replies never came back (the
    connection dropped, or reading them was interrupted): the server may have run them."""


class Pending(Generic[T]):
    """A plan whose calls are sent and whose replies are not read yet."""

    def __init__(self, plan: Plan[T], conn: Any, sent: list[Call],
                 read: Callable[[Any, list[Call]], list[Any]],
                 finish: Callable[[Plan[T], list[Call], list[Any]], T],
                 release: Callable[[Any], None], spin: float) -> None:
        self._plan = plan
        self._conn: Any = conn
        self._sent = sent
        self._read = read
        self._finish = finish
        self._release = release
        self._spin = spin
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    @classmethod
    def settled(cls, value: T) -> Pending[T]:
        """A pending plan that already has its result (a runner that ran it at once)."""
        out: Pending[T] = cls.__new__(cls)
        out._lock = threading.Lock()
        out._done, out._value, out._error, out._conn = True, value, None, None
        return out

    @property
    def done(self) -> bool:
        """The replies have been read (the outcome is known)."""
        return self._done

    def wait(self) -> None:
        """Read the replies and keep the outcome; raises only an interruption (Ctrl-C,
        SIGTERM's ``SystemExit``), which leaves :class:`ReplyLost` as the outcome."""
        with self._lock:
            if self._done:
                return
            conn, self._conn = self._conn, None
            try:
                if self._spin and self._sent:
                    wait_readable(conn, self._spin)
                replies = self._read(conn, self._sent)
            except BaseException as exc:
                conn.disconnect()
                self._release(conn)
                self._done = True
                self._error = exc if isinstance(exc, AgentMemError) and \
                    not isinstance(exc, Unavailable) else \
                    _lost(f"the reply of a write in flight was lost ({exc})", exc)
                if not isinstance(exc, Exception):
                    raise
                return
            self._release(conn)
            try:
                self._value = self._finish(self._plan, self._sent, replies)
            except FollowUp:  # pragma: no cover - the runner's finish runs follow-ups
                raise
            except Exception as exc:  # the plan's own outcome: refused records, ...
                self._error = exc
            except BaseException as exc:  # interrupted in a follow-up round trip
                self._error = _lost(f"a write's follow-up was interrupted ({exc!r})", exc)
                self._done = True
                raise
            self._done = True

    def result(self) -> T:
        """The plan's result, reading the replies first if need be; its error raised."""
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def _lost(message: str, cause: BaseException) -> ReplyLost:
    err = ReplyLost(message)
    err.__cause__ = cause
    return err
