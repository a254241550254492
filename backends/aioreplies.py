"""Reading replies on asyncio: the socket timeout counts the server's silence, not the
event loop's other work.

redis-py's asyncio client bounds each reply's read with its ``socket_timeout`` measured
on the loop's clock from the moment the read starts. A loop busy with other tasks (one
decoding a reply of thousands of actions holds it for a tenth of a second or more) does
not read the socket meanwhile, and many large replies read at once share the loop: every
byte keeps coming, yet each whole reply takes longer than the timeout, and the read
raised ``TimeoutError``, that is :class:`~agentmem.errors.Unavailable`, from a healthy
server (review 101: 50 tasks each reading 5,000 actions at once on a 2 s timeout, 22
failed; 100 tasks on 5 s, 99).

So replies are read without redis-py's timer (``read_response`` with no timeout) under a
watch of the connection: a check every ``socket_timeout`` of the loop's clock (later
when the loop is busy), which lets the read go on when

- bytes are waiting that the client has not taken yet: in the connection's
  ``StreamReader``, or on the socket (``FIONREAD``), where a busy loop leaves them; or
- the read moved since the previous check: a reply was read, or the parser waits on
  another ``StreamReader`` wake-up than it did then (each wait for bytes makes a new
  one, and a byte fed to the stream ends it);

and otherwise ends it with redis-py's ``TimeoutError``: nothing came in the whole time
between two checks, at least the timeout. As the blocking runner's
(:mod:`agentmem.backends.wakes`), a read fails only when no byte came for the timeout,
and a server that stops (a crash, ``SIGSTOP``) fails it within twice the timeout of its
last byte, plus what the loop is late. A cancelled read is cancelled as before; an
interrupted read closes the connection, as redis-py's own do.

Two places use the watch. The connections of the clients :func:`connect_async
<agentmem.backends.redis.connect_async>` creates are :class:`SilenceWatch` ones (their
``read_response`` is watched): every read of theirs, the handshake of a new connection,
``EVAL``, ``SCRIPT LOAD`` and ``PING`` included. And the runner reads a plan's replies
with :func:`read_replies`, one watch for them all, on any client's connection: a client
the user passes keeps redis-py's timer for its other reads.

Over TLS the watch sees bytes a whole record at a time (up to 16 KB): the SSL layer takes
the socket's bytes (``FIONREAD`` sees none) and hands the stream nothing until a record
is complete.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Awaitable, Sized
from typing import Any, TypeVar, cast

import redis
import redis.asyncio
import redis.asyncio.connection

try:  # FIONREAD: how many bytes a socket holds (POSIX)
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows: the stream's bytes only
    fcntl = None  # type: ignore[assignment]

HAS_FIONREAD = fcntl is not None
"""Whether :func:`queued_bytes` can ask a socket (POSIX)."""

__all__ = ["HAS_FIONREAD", "SilenceWatch", "queued_bytes", "read_replies", "socket_of",
           "watched_options"]

T = TypeVar("T")


async def read_replies(client: Any, conn: Any, names: list[str]) -> list[Any]:
    """The replies of the commands ``names``, sent on ``conn``, in order (an error reply
    as its ``ResponseError``); redis-py's ``TimeoutError`` when the server was silent
    for the connection's ``socket_timeout`` (see above)."""
    replies: list[Any] = []

    async def read(target: Any) -> list[Any]:
        for name in names:
            try:
                replies.append(await client.parse_response(target, name))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies

    timeout = conn.socket_timeout
    if not timeout:  # no timeout: nothing to watch
        return await read(conn)
    return await _watched(conn, timeout, replies, read(_Untimed(conn)))


async def _watched(conn: Any, timeout: float, replies: Sized, read: Awaitable[T]) -> T:
    """``read`` (of replies on ``conn``, counted in ``replies``) under the silence watch."""
    limit = asyncio.timeout(None)
    try:
        async with limit:
            watch = _Silence(conn, limit, replies, timeout)
            try:
                return await read
            finally:
                watch.stop()
    except TimeoutError:
        if not limit.expired():
            raise
        raise redis.exceptions.TimeoutError(  # what redis-py's own timeout raises
            f"Timeout reading from socket: no byte for {timeout} s") from None


class SilenceWatch:
    """A redis-py asyncio connection whose replies are read under the silence watch
    (mixed in before the connection class): a read with no timeout of its own (the
    connection's ``socket_timeout``) fails only when the server was silent that long.
    A read given a timeout (a pub/sub poll, :class:`_Untimed`'s none) is redis-py's."""

    __slots__ = ()

    socket_timeout: float | None

    async def read_response(self, disable_decoding: bool = False,
                            timeout: float | None = None, **kwargs: Any) -> Any:
        base = cast(Any, super())
        watch = self.socket_timeout if timeout is None else None
        if not watch:
            return await base.read_response(disable_decoding, timeout, **kwargs)
        read = base.read_response(disable_decoding, math.inf, **kwargs)
        return await _watched(self, watch, (), read)


class _WatchedConnection(SilenceWatch, redis.asyncio.Connection):
    pass


class _WatchedSSLConnection(SilenceWatch, redis.asyncio.SSLConnection):
    pass


class _WatchedUnixConnection(SilenceWatch, redis.asyncio.UnixDomainSocketConnection):
    pass


_WATCHED: dict[type, type] = {
    redis.asyncio.Connection: _WatchedConnection,
    redis.asyncio.SSLConnection: _WatchedSSLConnection,
    redis.asyncio.UnixDomainSocketConnection: _WatchedUnixConnection,
}


def watched_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The pool options of an asyncio client of ``url`` whose connections are watched:
    redis-py's class for the URL's scheme (TCP, TLS, Unix socket) with
    :class:`SilenceWatch` mixed in. A ``connection_class`` of the caller's is kept.
    ``ValueError`` for a URL redis-py does not take."""
    if "connection_class" in options:
        return options
    kind = redis.asyncio.connection.parse_url(url).get(
        "connection_class", redis.asyncio.Connection)
    return {**options, "connection_class": _WATCHED.get(kind, kind)}


class _Untimed:
    """``conn`` to redis-py's ``parse_response``, its reads with no timeout: the
    :class:`_Silence` watch bounds them."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = math.inf  # redis-py 8: no timer; 5-7: one that never fires
        return await self._conn.read_response(*args, **kwargs)


class _Silence:
    """The check of one read, every ``timeout`` seconds of the loop's clock: it expires
    ``limit`` (which cancels the read) when the server was silent since the last one."""

    __slots__ = ("_conn", "_handle", "_limit", "_loop", "_read", "_replies", "_timeout",
                 "_waiter")

    def __init__(self, conn: Any, limit: asyncio.Timeout, replies: Sized,
                 timeout: float) -> None:
        self._conn = conn
        self._limit = limit
        self._replies = replies
        self._timeout = timeout
        self._read = -1
        self._waiter: Any = None
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(timeout, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        stream = getattr(self._conn, "_reader", None)
        waiter = getattr(stream, "_waiter", None)
        read = len(self._replies)
        if read != self._read or waiter is None or waiter is not self._waiter or (
                _waiting(self._conn, stream)):
            self._read, self._waiter = read, waiter
            self._handle = self._loop.call_later(self._timeout, self._check)
        else:  # the same wait for bytes as a whole timeout ago, and none came
            self._limit.reschedule(self._loop.time())


def _waiting(conn: Any, stream: Any) -> bool:
    """Whether bytes came that the client has not taken: in the stream, or on the
    socket (the loop has not read it)."""
    if getattr(stream, "_buffer", None):
        return True
    sock = socket_of(conn)
    if sock is None:
        return False
    try:
        return queued_bytes(sock.fileno()) > 0
    except (OSError, ValueError):  # closed: the read learns it
        return False


def socket_of(conn: Any) -> Any:
    """The socket of a connected redis-py asyncio connection (None: not connected)."""
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    return transport.get_extra_info("socket") if transport is not None else None


def queued_bytes(fd: int) -> int:
    """How many bytes socket ``fd`` holds unread (``FIONREAD``; 0 where there is no
    ``fcntl``); ``OSError`` or ``ValueError`` for a closed one."""
    if fcntl is None:
        return 0
    got = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    queued: int = struct.unpack("i", got)[0]
    return queued
