"""The change feed: a dedicated connection that receives the server's invalidation
messages (``CLIENT TRACKING ... BCAST PREFIX``, redirected to itself, subscribed
to ``__redis__:invalidate``).

Every other command agentmem sends goes through a :class:`~agentmem.plans.plan.Plan`
and a runner. This connection is the one documented exception (see
``docs/architecture.md``, "One road to Redis"): the server *pushes* on it at any
time, which no request/reply runner carries. It is used by
:class:`agentmem.search.similarity.SimilarityIndex` to keep its cache exact.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, cast

import hiredis

from agentmem.backends.redis import Memory
from agentmem.errors import BackendError
from agentmem.plans.plan import Arg

__all__ = ["INVALIDATE_CHANNEL", "ChangeFeed"]

INVALIDATE_CHANNEL = b"__redis__:invalidate"


def _pack(args: tuple[Arg, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


class ChangeFeed:
    """A connection on which the server reports changes to keys under one prefix.

    Opened with the store's connection settings (host, credentials, TLS, database),
    then read and written raw with hiredis: redis-py's own reader does not take
    invalidation messages on a subscribed connection.

    This is agentmem's one road to Redis besides plans and runners: a request/reply
    runner cannot carry a subscription that the server pushes to at any time.
    """

    def __init__(self, memory: Memory, prefix: str) -> None:
        client: Any = memory.client
        if getattr(memory.runner, "cluster", False):
            # a cluster: the node serving the prefix's slot (an agent's keys share one
            # slot in layout 2), where tracking sees every change of those keys
            client = client.get_redis_connection(client.get_node_from_key(prefix))
        pool: Any = client.connection_pool
        self.conn: Any = pool.make_connection()
        self.reader = hiredis.Reader()
        try:
            self.conn.connect()
            self.sock: socket.socket = self.conn._sock
            self.sock.settimeout(10.0)
            self._call("HELLO", "2")  # RESP2: invalidations as messages of a subscription
            cid = self._call("CLIENT", "ID")
            self._call("CLIENT", "TRACKING", "ON", "REDIRECT", str(cid), "BCAST",
                       "PREFIX", prefix)
            reply = self._call("SUBSCRIBE", INVALIDATE_CHANNEL)
            if not (isinstance(reply, list) and reply[0] == b"subscribe"):
                raise BackendError(f"unexpected SUBSCRIBE reply {reply!r}")
        except BaseException:
            self.close()
            raise
        self.token = 0

    def _read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise BackendError(f"Redis refused change tracking: {reply}")
                return reply
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the server closed the tracking connection")
            self.reader.feed(data)

    def _call(self, *args: Arg) -> Any:
        self.sock.sendall(_pack(args))
        return self._read()

    def changes(self) -> list[bytes] | None:
        """The keys changed since the last call (``None``: everything may have changed).

        Sends ``PING`` and reads up to its reply, so every change the server made
        before it has been seen.
        """
        self.token += 1
        tok = str(self.token).encode()
        self.sock.sendall(_pack(("PING", tok)))
        keys: list[bytes] = []
        flushed = False
        while True:
            msg = self._read()
            if msg[0] == b"pong":
                if msg[1] == tok:
                    return None if flushed else keys
                continue
            if msg[0] == b"message" and msg[1] == INVALIDATE_CHANNEL:
                if msg[2] is None:
                    flushed = True
                else:
                    keys.extend(msg[2])

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection that may be broken already
            self.conn.disconnect()
