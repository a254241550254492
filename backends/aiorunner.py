"""The asyncio runner of Redis and Valkey (:class:`AsyncRedisRunner`).

The same protocol as the blocking :class:`~agentmem.backends.redis.RedisRunner`: a
plan's calls in one round trip, each script loaded ahead of its first call on the same
pipeline, scripts a restarted server forgot loaded and their calls sent again,
redis-py's errors mapped onto :mod:`agentmem.errors`.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any, TypeVar

import redis
import redis.asyncio

from agentmem.backends.aioreplies import HAS_FIONREAD, queued_bytes, read_replies, socket_of
from agentmem.backends.failures import LINK_ERRORS
from agentmem.backends.replies import (
    check_client,
    command_name,
    layout_errors,
    mapped,
    missing_scripts,
    ping_refused,
    script_error,
    unavailable,
)
from agentmem.backends.wire import KnownScripts, inline_loads, own_replies, packed_chunks
from agentmem.lua.scripts import CLAIM_LAYOUT
from agentmem.plans.keyspace import LAYOUT_KEY, check_recorded_version
from agentmem.plans.plan import Call, FollowUp, Plan

__all__ = ["AsyncRedisRunner", "closed_by_peer"]

T = TypeVar("T")


class AsyncRedisRunner:
    """Runs plans on an asyncio redis-py client; the same protocol as :class:`RedisRunner`."""

    def __init__(self, client: redis.asyncio.Redis, layout_version: int | None = None) -> None:
        check_client(client)
        self.client = client
        self.pending_layout = layout_version
        self.scripts = KnownScripts()
        """The scripts loaded: each is loaded on the pipeline of its first call, with the
        core scripts (:func:`agentmem.backends.wire.inline_loads`)."""

    async def check_layout(self) -> None:
        """Compare the server's layout version with ours (once; :class:`LayoutError`)."""
        version = self.pending_layout
        if version is None:
            return
        with layout_errors():
            try:
                raw = await self.client.eval(CLAIM_LAYOUT.source, 1, LAYOUT_KEY, str(version))
            except redis.exceptions.ReadOnlyError:  # a replica: read what it has
                raw = await self.client.get(LAYOUT_KEY)
        check_recorded_version(raw, version)
        self.pending_layout = None

    async def run(self, plan: Plan[T]) -> T:
        if self.pending_layout is not None:
            await self.check_layout()
        # No garbage-collector pause here: it is process-wide, and other tasks of
        # the event loop run while this plan awaits its replies.
        while True:
            result = await self._run_once(plan)
            if not isinstance(result, FollowUp):
                return result
            plan = result.plan

    async def _run_once(self, plan: Plan[T]) -> T | FollowUp:
        try:
            sent, replies = await self._send(plan.calls, plan.bulk)
            missing = missing_scripts(replies)
            if missing:
                for script in {sent[i].script for i in missing}:
                    assert script is not None
                    try:
                        await self.client.script_load(script.source)
                    except redis.ResponseError as exc:
                        raise script_error(exc) from exc
                _, again = await self._send(sent[i] for i in missing)
                for i, r in zip(missing, again, strict=True):
                    replies[i] = r
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        except redis.ResponseError as exc:  # replies are kept: the connection's handshake
            raise ping_refused(exc, "the connection's handshake") from exc
        try:
            return plan.parse(mapped(replies))
        except FollowUp as more:
            return more

    async def _send(self, calls: Iterable[Call], bulk: bool = False
                    ) -> tuple[list[Call], list[Any]]:
        client: Any = self.client
        pool = client.connection_pool
        conn = await pool.get_connection()
        sent: list[Call] = []
        injected: dict[int, str] = {}
        try:
            self.scripts.watch(conn)
            if closed_by_peer(conn):  # a restarted server: a new connection, as the
                await conn.disconnect()  # blocking pool makes one
                await conn.connect()
            generation = self.scripts.generation
            calls = inline_loads(calls, self.scripts.shas, injected, bulk)
            for n, chunk in enumerate(packed_chunks(conn, calls, sent)):
                await conn.send_packed_command([chunk], check_health=n == 0)
            replies = await read_replies(client, conn, [command_name(c) for c in sent])
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        ran: set[str] = set()
        out = own_replies(sent, replies, injected, ran)
        self.scripts.record(generation, ran)
        return out


def closed_by_peer(conn: Any) -> bool:
    """Whether the server closed an idle connection from the pool (it restarted, or timed
    the connection out).

    redis-py's asyncio pool checks a connection's stream before handing it out, but the
    stream learns of the server's close only once the event loop has read the socket: a
    plan sent right after a restart, with no turn of the loop between, went on the dead
    connection and raised ``Unavailable``. The blocking pool asks the socket itself, and
    so does this: one ``poll`` with no timeout. Linux says whether the peer hung up
    (``POLLRDHUP``) even when bytes arrived before (a TLS close alert, a push
    notification left unread); elsewhere a readable socket with no byte waiting
    (``FIONREAD``) is a close. Bytes waiting on a live connection (push notifications)
    are left to redis-py's pool, which reads them once its stream has them."""
    sock = socket_of(conn)
    if sock is None or not HAS_FIONREAD:
        return False  # not connected (the pool connects it), closed already, or Windows
    try:
        fd = sock.fileno()
        poller = select.poll()  # not select.select: any descriptor number
        poller.register(fd, select.POLLIN | _RDHUP)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (_RDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return True
        if _RDHUP:
            return False  # bytes of a live connection
        return queued_bytes(fd) == 0
    except (OSError, ValueError):
        return True


_RDHUP: int = getattr(select, "POLLRDHUP", 0)
"""Linux's "the peer hung up" poll flag (0 where there is none)."""
