"""Reading a pipeline's replies with few wake-ups: the reader sleeps until the bytes the
replies still due take, at least, have come.

A blocking read that finds no complete reply puts the thread to sleep until bytes
come, and on the VMs of ``docs/performance.md`` each wake costs 150-250 µs of the
client's CPU. A write of 10,000 actions is about 100 script calls whose replies come a
few at a time as the server runs them: read as they come, 55-60 wakes, about 0.8 µs per
action.

Before the next reply is read, when the connection's parser holds nothing of it, the
reader waits in ``poll`` with the socket's ``SO_RCVLOWAT`` set to the bytes the replies
still due take at least, and none of theirs has been read: each call's
:attr:`~agentmem.plans.plan.Call.least_reply`, :data:`LEAST_REPLY` (``+\\r\\n``, or
RESP3's null ``_\\r\\n``) unless its plan knows more (a write's reply is an array
whose first element is a text: 10 bytes at least). ``poll``
compares the mark with the bytes queued on the socket, so it never waits past the
pipeline's last byte, and a closed connection or an error wakes it at once. The mark is
then set back to 1 before the parser reads: a blocking ``recv`` on TCP that copied
some bytes would otherwise sleep until the mark's worth *more* were queued, which may
never come. So the mark is only ever used by this wait.

The socket's timeout: the read fails with redis-py's ``TimeoutError`` only when no
byte came for that long (``poll`` timed out and nothing is queued), so a healthy server
never fails a read the per-reply reads would have passed; a wait that times out with
bytes queued goes on to read them. A server that stops after sending a few replies is
found within twice the timeout of its last byte (once, read reply by reply): the wait
that saw those bytes queued lasted the timeout, and the next one lasts it again.

A call that states more than :data:`LEAST_REPLY` bytes states a bound its reply
never falls short of. Were one wrong, the last wait would not end when the last byte
came but after the socket's timeout (then the bytes queued are read, with no error);
without a socket timeout such a wait lasts at most a second (:data:`_BOUNDED`), after
which the reader reads, blocking, as it would have without the wait.

Only a plain TCP socket whose parser is hiredis's (it says whether it holds unread
bytes) is waited on so: a TLS socket may hold decrypted bytes in OpenSSL that the
kernel no longer counts, and ``poll`` on a Unix socket ignores the mark.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Sequence
from typing import Any

import redis

from agentmem.plans.plan import LEAST_REPLY, Call

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not on Windows: no waits there
    fcntl = termios = None  # type: ignore[assignment]

_NOT_YET: Any = getattr(getattr(getattr(redis, "_parsers", None), "hiredis", None),
                        "NOT_ENOUGH_DATA", False)
"""What redis-py 5.0.8-7.x keep in the parser's ``_next_response`` when it holds no
parsed reply (``False`` before 5.0.8; the attribute is gone in 8)."""

__all__ = ["LEAST_REPLY", "ReplyMarks"]

_MARKED = 4
"""Fewer replies than this are read as they come: the wait would save at most a wake
or two and costs three system calls."""

_FAMILIES = frozenset(f for f in (getattr(socket, "AF_INET", None),
                                  getattr(socket, "AF_INET6", None)) if f is not None)
_LOWAT: Any = getattr(socket, "SO_RCVLOWAT", None)
_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


_BOUNDED = 1000.0
"""Without a socket timeout, a wait whose mark counts on more than
:data:`LEAST_REPLY` bytes per reply lasts at most this long (ms) before the reader
reads what came: a bound that was wrong then costs a second, never a hang."""


class ReplyMarks:
    """The waits of one connection's reads of the replies of ``calls``: call
    :meth:`next` before reading each of them, in order."""

    __slots__ = ("_bytes", "_calls", "_conn", "_left", "_poll", "_sock", "_timeout")

    def __init__(self, conn: Any, calls: Sequence[Call]) -> None:
        replies = len(calls)
        self._conn = conn
        self._calls = calls
        self._left = replies
        self._bytes = 0
        self._sock: socket.socket | None = None
        self._poll: Any = None
        self._timeout: float | None = None
        sock = getattr(conn, "_sock", None)
        if (replies >= _MARKED and _LOWAT is not None and hasattr(select, "poll")
                and fcntl is not None
                and type(sock) is socket.socket and sock.family in _FAMILIES
                and _idle_reader(conn) is not None):
            self._sock = sock
            self._poll = select.poll()
            self._poll.register(sock.fileno(), _EVENTS)
            timeout = sock.gettimeout()
            self._timeout = None if timeout is None else timeout * 1000
            self._bytes = sum(c.least_reply for c in calls)

    def next(self) -> None:
        """Before reading the next reply: when the parser holds nothing of it, sleep
        until the replies still due can have come whole (see above)."""
        due = self._left
        self._left = due - 1
        sock = self._sock
        if sock is None or due < 1:
            return
        mark = self._bytes
        self._bytes = mark - self._calls[-due].least_reply
        if due < 2 or not _idle_reader(self._conn):
            return
        timeout = bounded = self._timeout
        if bounded is None and mark > LEAST_REPLY * due:
            bounded = _BOUNDED
        try:
            sock.setsockopt(socket.SOL_SOCKET, _LOWAT, mark)
            try:
                ready = self._poll.poll(bounded)
            finally:
                sock.setsockopt(socket.SOL_SOCKET, _LOWAT, 1)
            idle = not ready and timeout is not None and _queued(sock) == 0
        except OSError as exc:  # closed meanwhile (another thread), reset: as a read's
            raise redis.exceptions.ConnectionError(
                f"Error while reading from socket: {exc}") from exc
        if idle:  # no byte for the whole timeout (without one: read, blocking, as before)
            raise redis.exceptions.TimeoutError("Timeout reading from socket")


def _idle_reader(conn: Any) -> bool | None:
    """Whether ``conn``'s parser holds no unread byte and no parsed reply; None: a
    parser that does not say (not hiredis's), or none (disconnected)."""
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    has_data = getattr(reader, "has_data", None)
    if has_data is None:
        return None
    held = getattr(parser, "_next_response", False)  # redis-py 5-7's can_read
    if held is not False and held is not _NOT_YET:
        return False
    return not has_data()


def _queued(sock: socket.socket) -> int:
    """Bytes queued on ``sock``, not read yet."""
    got = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    queued: int = struct.unpack("i", got)[0]
    return queued
