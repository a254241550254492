"""The asyncio runner after its server restarted: the first plan goes on a new
connection, as the blocking runner's does, instead of raising ``Unavailable`` on the
pooled connection the server closed (the event loop had not read the close yet).

Real servers, real restarts (``LocalServer`` stopped and started again on its port)."""

from __future__ import annotations

import array
import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from _support import restartable, tls_redis

import agentmem
from agentmem import Action
from agentmem.servers.local import LocalServer, find_binary


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    with restartable(tmp_path) as server:
        yield server


def act(step: int) -> Action:
    return Action(agent_id="a1", simulation_id="s", step_number=step, action_type="move")


def test_the_first_write_after_a_restart_is_stored(srv: LocalServer) -> None:
    async def go() -> list[str]:
        amem = agentmem.connect_async(srv.url)
        try:
            await amem.actions.add(act(1))
            srv.stop()  # no await between the restart and the write: the loop has not
            srv.start()  # read the old connection's close
            stored = await amem.actions.add(act(2))
            got = await amem.actions.get(stored.action_id, agent_id="a1")
            assert got == stored
            return [stored.action_id]
        finally:
            await amem.close()

    assert asyncio.run(go()) == ["a1-2-move"]
    with redis.Redis(port=srv.port) as r:
        assert r.exists("agent:a1:action:a1-2-move") == 1


def test_a_healthy_pooled_connection_is_kept(srv: LocalServer) -> None:
    async def go() -> tuple[int, int]:
        amem = agentmem.connect_async(srv.url)
        try:
            await amem.actions.add(act(1))
            with redis.Redis(port=srv.port) as r:
                before = int(r.info("stats")["total_connections_received"])
                await amem.actions.add(act(2))
                await amem.actions.add_many([act(3), act(4)])
                after = int(r.info("stats")["total_connections_received"])
            return before, after
        finally:
            await amem.close()

    before, after = asyncio.run(go())
    assert after == before  # the same connections: none made again


def test_a_connection_numbered_past_1024_is_checked_too(srv: LocalServer) -> None:
    """``select.select`` refuses descriptors from 1024 on; the check must not (it would
    find every such connection dead, or none)."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is below 1200")
    if soft != resource.RLIM_INFINITY and soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    gc.collect()  # sockets of earlier tests closed now, not while the filler holds
    filler = [socket.socket()]  # every free descriptor below 1024 taken: the next ones
    while filler[-1].fileno() < 1030:  # are past it
        filler.append(socket.socket())

    async def go() -> tuple[int, int, str]:
        amem = agentmem.connect_async(srv.url)
        try:
            await amem.actions.add(act(1))
            conn = await amem.runner.client.connection_pool.get_connection()
            fd = conn._writer.transport.get_extra_info("socket").fileno()
            await amem.runner.client.connection_pool.release(conn)
            with redis.Redis(port=srv.port) as r:
                before = int(r.info("stats")["total_connections_received"])
                await amem.actions.add(act(2))  # healthy: kept
                after = int(r.info("stats")["total_connections_received"])
            srv.stop()
            srv.start()
            stored = await amem.actions.add(act(3))  # closed: a new connection
            assert before == after
            return fd, after - before, stored.action_id
        finally:
            await amem.close()

    try:
        fd, made, stored = asyncio.run(go())
    finally:
        for s in filler:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert fd >= 1024
    assert (made, stored) == (0, "a1-3-move")


def test_a_push_left_unread_before_the_restart_does_not_hide_it(srv: LocalServer) -> None:
    """A RESP3 connection holding an invalidation push nobody read when the server
    restarts: bytes wait on the closed socket, and the close is still seen."""
    async def go() -> str:
        client = redis.asyncio.Redis(port=srv.port, protocol=3)
        amem = agentmem.connect_async(client=client)
        try:
            await amem.actions.add(act(1))
            pool = client.connection_pool
            conn = await pool.get_connection()
            await conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "cache:")
            assert await conn.read_response() == b"OK"
            await pool.release(conn)
            with redis.Redis(port=srv.port) as r:
                r.set("cache:x", 1)  # an invalidation pushed to the pooled connection
                deadline = time.monotonic() + 5
                while not _waiting(conn):  # the push arrived, unread
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
            srv.stop()
            srv.start()
            stored = await amem.actions.add(act(2))
            return stored.action_id
        finally:
            await amem.close()

    assert asyncio.run(go()) == "a1-2-move"


def test_a_tls_connection_the_server_closed_is_seen(tmp_path: Path) -> None:
    """Over TLS the server sends a close alert before it closes: bytes wait on the closed
    socket. The pooled connection is killed (``CLIENT KILL``), then written to with no
    turn of the event loop."""
    with tls_redis(tmp_path) as (port, cert), \
            redis.Redis(port=port, ssl=True, ssl_ca_certs=str(cert)) as admin:

        async def go() -> str:
            amem = agentmem.connect_async(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")
            try:
                await amem.actions.add(act(1))
                mine = admin.client_id()
                for c in admin.client_list():
                    if int(c["id"]) != mine:
                        admin.client_kill_filter(_id=c["id"])
                time.sleep(0.1)  # the close reaches the socket; the loop does not run
                return (await amem.actions.add(act(2))).action_id
            finally:
                await amem.close()

        assert asyncio.run(go()) == "a1-2-move"


def _waiting(conn: object) -> int:
    """Bytes waiting on a pooled connection's socket, unread."""
    import fcntl
    import termios

    sock = conn._writer.transport.get_extra_info("socket")  # type: ignore[attr-defined]
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return buf[0]


def test_a_server_back_with_fewer_databases_is_a_config_error(tmp_path: Path) -> None:
    """The URL's database is gone after a restart (``--databases 2``): both APIs, and a
    write sent ahead, raise ``ConfigError`` naming it (a raw redis-py ``ResponseError``
    escaped before)."""
    from agentmem.errors import ConfigError

    kind = "redis" if find_binary("redis") is not None else "valkey"
    if find_binary(kind) is None:
        pytest.skip("no server binary")
    first = LocalServer(kind, directory=tmp_path / "a").start()  # type: ignore[arg-type]
    port = first.port
    url = f"redis://127.0.0.1:{port}/5"
    mem = agentmem.connect(url)
    mem.actions.add(act(1))

    async def go() -> None:
        amem = agentmem.connect_async(url)
        try:
            await amem.actions.add(act(1))
            first.stop()
            again = LocalServer(kind, port=port, directory=tmp_path / "b",  # type: ignore[arg-type]
                                extra_args=("--databases", "2")).start()
            try:
                with pytest.raises(ConfigError, match="database the server does not have"):
                    await amem.actions.add(act(2))
                with pytest.raises(ConfigError, match="database the server does not have"):
                    mem.actions.add(act(2))
                plan = type(mem.actions).add_many.build(mem.actions, [act(3)])
                with pytest.raises(ConfigError, match="database the server does not have"):
                    mem.runner.start(plan)  # a write sent ahead (DualWriter.send_many)
                with redis.Redis(port=port) as r:
                    assert r.dbsize() == 0
            finally:
                again.close()
        finally:
            await amem.close()

    try:
        asyncio.run(go())
    finally:
        mem.close()
        first.close()
