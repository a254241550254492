"""A plan of several calls of one script after the server restarted without its scripts,
while another writer loads the script again between two of the plan's calls: the calls
run in their order. The runner forgets the scripts it loaded whenever one of its
connections connects (``wire.KnownScripts``), so each script's next first call goes
after its load. Before, the first call was refused with ``NOSCRIPT``, the second ran
(the other writer had loaded the script), and the first ran again after it: its list
entry behind its successor's. Real servers, real restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _support import restartable

import agentmem
from agentmem.lua.loader import Script
from agentmem.plans.plan import Call, Plan, script_call
from agentmem.servers.local import LocalServer

PUSH = Script("test_push", "return redis.call('RPUSH', KEYS[1], ARGV[1])")
PAD = "x" * (1 << 14)  # a call bigger than a send chunk: sent as soon as it is built


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    with restartable(tmp_path) as server:
        yield server


def _two_pushes(port: int) -> Iterator[Call]:
    """Two calls of one script; between building them, another writer loads the script,
    after the first call (if it was sent) was refused."""
    yield script_call(PUSH, ["first", PAD], ["L"])
    time.sleep(0.3)  # a call sent has been run (refused) by now
    with redis.Redis(port=port) as other:
        other.script_load(PUSH.source)
    yield script_call(PUSH, ["second", PAD], ["L"])


def _listed(port: int) -> list[bytes]:
    """The list the plan pushed to, once the server confirms no call was refused."""
    with redis.Redis(port=port) as r:
        assert "errorstat_NOSCRIPT" not in r.info("errorstats")  # loaded ahead
        return r.lrange("L", 0, -1)


def test_a_plan_of_several_calls_keeps_its_order_after_a_restart(srv: LocalServer) -> None:
    with agentmem.connect(srv.url) as mem:
        mem.runner.run(Plan((script_call(PUSH, ["warm"], ["M"]),), list))  # loaded
        srv.stop()
        srv.start()  # empty: no keys, no scripts
        mem.runner.run(Plan(_two_pushes(srv.port), list))
    assert _listed(srv.port) == [b"first", b"second"]


def test_an_async_plan_of_several_calls_keeps_its_order_after_a_restart(
        srv: LocalServer) -> None:
    async def main() -> None:
        async with agentmem.connect_async(srv.url) as mem:
            await mem.runner.run(Plan((script_call(PUSH, ["warm"], ["M"]),), list))
            srv.stop()
            srv.start()
            await mem.runner.run(Plan(_two_pushes(srv.port), list))

    asyncio.run(main())
    assert _listed(srv.port) == [b"first", b"second"]


def test_a_plan_sent_before_a_reconnection_does_not_vouch_for_the_new_server(
        srv: LocalServer) -> None:
    """Loads a plan ran count as known only if no connection connected since it was
    sent: one that finished on the old server adds nothing."""
    with agentmem.connect(srv.url) as mem:
        known = mem.runner.scripts
        mem.runner.run(Plan((script_call(PUSH, ["warm"], ["M"]),), list))
        assert PUSH.sha in known.shas
        generation = known.generation
        with redis.Redis(port=srv.port) as fresh:  # a connection of another client: no
            fresh.ping()                            # effect on the runner's
        assert known.generation == generation
        conn = mem.runner.client.connection_pool.get_connection()
        try:
            conn.disconnect()
            conn.connect()  # one of the runner's connections connects again
        finally:
            mem.runner.client.connection_pool.release(conn)
        assert known.shas == set()
        known.record(generation, {PUSH.sha})  # a plan sent before: ran on a server gone
        assert known.shas == set()
        known.record(known.generation, {PUSH.sha})
        assert known.shas == {PUSH.sha}
