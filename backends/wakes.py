"""Reading a pipeline's replies with few wake-ups: the kernel told how many bytes are
still due, at least, before it wakes the reader.

A blocking read that finds no complete reply puts the thread to sleep until bytes
come, and on the VMs of ``docs/performance.md`` each wake costs 50-80 µs of the
client's CPU. A write of 10,000 actions is about 100 script calls whose replies come
one every few milliseconds: read one at a time, that is 100 wakes, about 0.5 µs per
action, as much as building a tenth of the write.

``SO_RCVLOWAT`` tells the kernel not to wake a blocking read before that many bytes
are queued. Every RESP reply is at least :data:`LEAST_REPLY` bytes (``+\\r\\n``, or
RESP3's null ``_\\r\\n``), so before reading the next of ``n`` replies still due, at
least ``3 * (n - 1) + 1`` bytes are still to come (the 1: the end of the reply being
read, which may have begun). Asking for that many never keeps the reader asleep past
the pipeline's last byte, and a reader that wakes with a third of the remaining
replies' bytes (or more) needs about a dozen wakes for 100 replies, not 100. A closed
connection or an error still wakes it at once.

Only a plain TCP or Unix socket is marked (a TLS socket may hold decrypted bytes in
OpenSSL that the kernel no longer counts). On a socket with a timeout (redis-py's
default ``socket_timeout`` is 5 s) the timer covers one read, and a read that waits for
several replies instead of one must get them all within the timeout. So a read there
waits for at most one reply per :data:`REPLY_SECONDS` of the timeout (100 replies for
5 s): a healthy server runs a write's call (about 100 records) in a few milliseconds,
so the read times out, as before, only when the server has stalled for nearly the
whole timeout. The read of the last reply sets the mark back to 1, so a connection goes
back to its pool as it came; a read that fails leaves the connection disconnected
(every runner does that).
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["LEAST_REPLY", "REPLY_SECONDS", "ReplyMarks"]

LEAST_REPLY = 3
"""Bytes of the shortest RESP reply: an empty status ``+\\r\\n`` or RESP3's ``_\\r\\n``."""

REPLY_SECONDS = 0.05
"""On a socket with a timeout, one read waits for at most one reply per this many
seconds of the timeout (see above)."""

_MARKED = 4
"""Fewer replies than this are read as they come: the mark would save at most a wake or
two and costs a system call per reply."""

_FAMILIES = frozenset(f for f in (getattr(socket, "AF_INET", None),
                                  getattr(socket, "AF_INET6", None),
                                  getattr(socket, "AF_UNIX", None)) if f is not None)
_LOWAT: Any = getattr(socket, "SO_RCVLOWAT", None)


class ReplyMarks:
    """The low-water marks of one connection's reads of ``replies`` replies: call
    :meth:`next` before reading each of them, in order."""

    __slots__ = ("_cap", "_left", "_set")

    def __init__(self, conn: Any, replies: int) -> None:
        self._left = replies
        sock = getattr(conn, "_sock", None)
        self._set: Any = None
        self._cap = replies
        if (replies >= _MARKED and _LOWAT is not None and type(sock) is socket.socket
                and sock.family in _FAMILIES):
            self._set = sock.setsockopt
            timeout = sock.gettimeout()
            if timeout is not None:
                self._cap = max(int(timeout / REPLY_SECONDS), 1)

    def next(self) -> None:
        """Before reading the next reply: wake no earlier than the bytes of the replies
        still due, at their least, can have come."""
        self._left -= 1
        if self._set is not None:
            due = min(max(self._left, 0), self._cap)
            self._set(socket.SOL_SOCKET, _LOWAT, LEAST_REPLY * due + 1)
