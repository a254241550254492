"""The asyncio runner after its server restarted: the first plan goes on a new
connection, as the blocking runner's does, instead of raising ``Unavailable`` on the
pooled connection the server closed (the event loop had not read the close yet).

Real servers, real restarts (``LocalServer`` stopped and started again on its port)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.servers.local import LocalServer, find_binary


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    if find_binary("redis") is None and find_binary("valkey") is None:
        pytest.skip("no redis-server or valkey-server binary")
    kind = "redis" if find_binary("redis") is not None else "valkey"
    server = LocalServer(kind, directory=tmp_path / "volatile").start()  # type: ignore[arg-type]
    yield server
    server.close()


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
    filler = [socket.socket() for _ in range(1050)]  # the next descriptors are past 1024

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
