"""The asyncio API's socket timeout counts the server's silence, not the event loop's
other work (``agentmem.backends.aioreplies``, review 101): a read in flight while
another task holds the loop for longer than the timeout (decoding a large reply, say)
gets its reply from a healthy server, also on new connections (their handshake) and in
a fresh store's layout check; a server that stops (``SIGSTOP``) still fails the
read with ``Unavailable``, busy loop or not, within about twice the timeout; a read so
stopped can still be cancelled. A full connection pool is no outage: a ``BackendError``
saying so, not ``Unavailable``, blocking and asyncio alike.

Real servers of the test's own (``SIGSTOP``/``SIGCONT`` on them); no mocks."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _support import restartable

import agentmem
from agentmem import Action
from agentmem.errors import BackendError, Unavailable
from agentmem.servers.local import LocalServer

TIMEOUT = 0.5
"""The socket timeout of these tests; the loop is held three times as long."""
HOLD = 1.5


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    with restartable(tmp_path) as server:
        yield server


def actions(n: int, agent: str = "a1") -> list[Action]:
    return [Action(agent_id=agent, simulation_id="s", step_number=step, action_type="move",
                   details={"say": "hello " * 5, "step": step}) for step in range(n)]


def hold_the_loop(seconds: float) -> None:
    """What a task decoding a large reply does to the loop: no turn of it meanwhile."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def test_a_read_in_flight_while_the_loop_is_held_past_the_timeout_succeeds(
        srv: LocalServer) -> None:
    """The server is paused (``CLIENT PAUSE``, 0.3 s) as the read is sent, so the reply
    comes while another task holds the loop for three times the timeout: the reply
    waits on the socket, and the read must take it, not time out."""
    async def go() -> list[Action]:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT)
        try:
            stored = await amem.actions.add_many(actions(2000))
            await amem.actions.recent("a1", 1)  # the scripts loaded: one call below
            with redis.Redis(port=srv.port) as r:
                r.client_pause(300)
            read = asyncio.create_task(amem.actions.recent("a1", 2000))
            await asyncio.sleep(0.05)  # the read sent, waiting for its reply
            assert not read.done()
            hold_the_loop(HOLD)
            got = await read
            assert got == stored[::-1]
            return got
        finally:
            await amem.close()

    assert len(asyncio.run(go())) == 2000


def test_many_large_reads_share_a_loop_that_decodes_without_timing_out(
        srv: LocalServer) -> None:
    """Review 101's case, small: 20 reads of 1,000 actions at once on a 0.5 s timeout
    while another task holds the loop for 1.5 s three times: every read gets its
    actions (before, those in flight across a hold raised ``Unavailable``)."""
    async def go() -> list[int]:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT)
        try:
            for a in range(4):
                await amem.actions.add_many(actions(1000, f"a{a}"))

            async def holder() -> None:
                for _ in range(3):
                    await asyncio.sleep(0.01)
                    hold_the_loop(HOLD)

            async def one(i: int) -> int:
                return len(await amem.actions.recent(f"a{i % 4}", 1000))

            hold = asyncio.create_task(holder())
            got = await asyncio.gather(*(one(i) for i in range(20)))
            await hold
            return got
        finally:
            await amem.close()

    assert asyncio.run(go()) == [1000] * 20


def test_new_connections_made_while_the_loop_is_held_past_the_timeout_succeed(
        srv: LocalServer) -> None:
    """A cold pool (review 106): ten reads at once need nine new connections, whose
    handshakes (``CLIENT SETINFO``) are answered late (``CLIENT PAUSE``, 0.3 s) while
    another task holds the loop for three times the timeout. The handshake's read is
    the connection's own, not the runner's: it must be watched too (before, nine of ten
    raised ``Unavailable``)."""
    async def go() -> list[int]:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT)
        try:
            await amem.actions.add_many(actions(20))
            assert len(amem.client.connection_pool._available_connections) == 1
            with redis.Redis(port=srv.port) as r:
                r.client_pause(300)
            reads = [asyncio.create_task(amem.actions.recent("a1", 5)) for _ in range(10)]
            await asyncio.sleep(0.05)  # connected, the handshakes sent
            hold_the_loop(HOLD)
            return [len(got) for got in await asyncio.gather(*reads)]
        finally:
            await amem.close()

    assert asyncio.run(go()) == [5] * 10


def test_the_first_call_s_layout_check_while_the_loop_is_held_succeeds(
        srv: LocalServer) -> None:
    """A fresh store's first call checks the layout (``EVAL`` on the client, not the
    runner's pipeline) and its reply comes while the loop is held past the timeout: it
    must be read, not time out (before: ``Unavailable``)."""
    async def go() -> int:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT)
        try:
            assert await amem.ping()  # connected; the layout is not checked yet
            assert amem.runner.pending_layout is not None
            with redis.Redis(port=srv.port) as r:
                r.client_pause(300)
            read = asyncio.create_task(amem.actions.recent("a1", 5))
            await asyncio.sleep(0.05)
            hold_the_loop(HOLD)
            got = await read
            assert amem.runner.pending_layout is None
            return len(got)
        finally:
            await amem.close()

    assert asyncio.run(go()) == 0


def test_a_stopped_server_fails_a_new_connection_s_handshake(srv: LocalServer) -> None:
    """The watch bounds the handshake's read: a server stopped (``SIGSTOP``) before a
    store connects takes the connection (the kernel does) and never answers, and the
    first call raises ``Unavailable`` within about twice the timeout, loop held or
    not."""
    async def go() -> float:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT,
                                      socket_connect_timeout=TIMEOUT)
        try:
            assert srv.process is not None
            os.kill(srv.process.pid, signal.SIGSTOP)
            try:
                t0 = time.perf_counter()
                with pytest.raises(Unavailable, match="Timeout"):
                    await amem.actions.recent("a1", 1)
                took = time.perf_counter() - t0
            finally:
                os.kill(srv.process.pid, signal.SIGCONT)
            assert await amem.actions.recent("a1", 1) == []
            return took
        finally:
            await amem.close()

    assert asyncio.run(go()) < 2 * TIMEOUT + 3.0


@pytest.mark.parametrize("held", [False, True], ids=["idle loop", "held loop"])
def test_a_stopped_server_still_fails_the_read_as_unavailable(
        srv: LocalServer, held: bool) -> None:
    """``SIGSTOP`` with a read in flight: no byte comes, so the read raises
    ``Unavailable`` within about twice the timeout, also when the loop was held past
    the timeout meanwhile (nothing waits on the socket then: no reason to go on)."""
    async def go() -> float:
        amem = agentmem.connect_async(srv.url, socket_timeout=TIMEOUT)
        try:
            await amem.actions.add_many(actions(10))
            assert srv.process is not None
            os.kill(srv.process.pid, signal.SIGSTOP)
            try:
                t0 = time.perf_counter()
                read = asyncio.create_task(amem.actions.recent("a1", 10))
                await asyncio.sleep(0.05)
                if held:
                    hold_the_loop(HOLD)
                with pytest.raises(Unavailable, match="Timeout reading"):
                    await read
                took = time.perf_counter() - t0
            finally:
                os.kill(srv.process.pid, signal.SIGCONT)
            assert len(await amem.actions.recent("a1", 10)) == 10  # a new connection
            return took
        finally:
            await amem.close()

    took = asyncio.run(go())
    # twice the timeout, plus the hold, plus a loaded machine's slack: no figure of speed
    assert took < 2 * TIMEOUT + (HOLD if held else 0) + 3.0


def test_a_read_waiting_on_a_stopped_server_can_be_cancelled(srv: LocalServer) -> None:
    async def go() -> None:
        amem = agentmem.connect_async(srv.url, socket_timeout=5)
        try:
            await amem.actions.add_many(actions(10))
            assert srv.process is not None
            os.kill(srv.process.pid, signal.SIGSTOP)
            try:
                read = asyncio.create_task(amem.actions.recent("a1", 10))
                await asyncio.sleep(0.2)
                read.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await read
                # a cancel of the caller's own timeout is the caller's TimeoutError
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await amem.actions.recent("a1", 10)
            finally:
                os.kill(srv.process.pid, signal.SIGCONT)
            assert len(await amem.actions.recent("a1", 10)) == 10
        finally:
            await amem.close()

    asyncio.run(go())


def test_a_full_connection_pool_is_no_outage(srv: LocalServer) -> None:
    """``max_connections`` in use: redis-py's pool refuses another connection; that is
    a ``BackendError`` naming the pool, not ``Unavailable`` (which a dual writer would
    journal as an outage)."""
    with agentmem.connect(srv.url, max_connections=1) as mem:
        pool = mem.runner.client.connection_pool
        taken = pool.get_connection()
        try:
            with pytest.raises(BackendError, match="connection pool is exhausted") as err:
                mem.actions.recent("a1", 1)
            assert not isinstance(err.value, Unavailable)
        finally:
            pool.release(taken)
        assert mem.actions.recent("a1", 1) == []

    async def go() -> None:
        amem = agentmem.connect_async(srv.url, max_connections=1)
        try:
            await amem.actions.recent("a1", 1)
            apool = amem.runner.client.connection_pool
            held = await apool.get_connection()
            try:
                with pytest.raises(BackendError, match="connection pool is exhausted") as e:
                    await amem.actions.recent("a1", 1)
                assert not isinstance(e.value, Unavailable)
            finally:
                await apool.release(held)
            assert await amem.actions.recent("a1", 1) == []
        finally:
            await amem.close()

    asyncio.run(go())
