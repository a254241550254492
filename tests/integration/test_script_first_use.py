"""Writers sharing one store on a server that has none of the scripts yet (``SCRIPT
FLUSH``): each write's calls run in the caller's order, so that a simulation's list of
actions holds them in that order. Each runner loads a script before its first call
(``wire.loaded_first``, ``aiorunner``); sent as they came, the calls of one writer
sent before another writer loaded the script were refused with ``NOSCRIPT`` and run
after those sent later, their list entries behind their successors'."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis

import agentmem
from agentmem.model.records import Action

WRITERS, ACTIONS = 4, 600


def _actions(sim: int) -> list[Action]:
    return [Action(agent_id=f"a{sim}_{i % 30}", simulation_id=f"s{sim}", step_number=i // 30,
                   action_type="move") for i in range(ACTIONS)]


def _listed(r: redis.Redis, sim: int) -> list[str]:
    return [x.decode() for x in r.lrange(f"simulation:s{sim}:actions", 0, -1)]


def _in_threads(mem: agentmem.Memory) -> list[list[str]]:
    """Each writer's actions stored by a thread of its own, all at once: their ids."""
    got: dict[int, list[str]] = {}

    def write(k: int) -> None:
        got[k] = [a.action_id for a in mem.actions.add_many(_actions(k))]

    threads = [threading.Thread(target=write, args=(k,)) for k in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [got[k] for k in range(WRITERS)]


def test_threads_write_in_order_on_a_server_without_scripts(server: Any,
                                                            r: redis.Redis) -> None:
    for _ in range(3):
        r.flushdb()
        r.script_flush()
        with agentmem.connect(server.url, batch_size=40) as mem:
            got = _in_threads(mem)
        assert [_listed(r, k) for k in range(WRITERS)] == got


def test_tasks_write_in_order_on_a_server_without_scripts(server: Any,
                                                          r: redis.Redis) -> None:
    async def main() -> dict[int, list[str]]:
        async with agentmem.connect_async(server.url, batch_size=40) as mem:
            async def write(k: int) -> list[str]:
                return [a.action_id for a in await mem.actions.add_many(_actions(k))]

            out = await asyncio.gather(*(write(k) for k in range(WRITERS)))
        return dict(enumerate(out))

    for _ in range(3):
        r.flushdb()
        r.script_flush()
        got = asyncio.run(main())
        assert [_listed(r, k) for k in range(WRITERS)] == [got[k] for k in range(WRITERS)]


def test_one_connection_is_enough_on_a_server_without_scripts(server: Any,
                                                             r: redis.Redis) -> None:
    """The scripts go on the pipeline of their first call: a pool of one connection
    writes and reads (a load on a second connection raised ``Unavailable``: too many
    connections; a blocking pool waited for ever)."""
    r.script_flush()
    with agentmem.connect(server.url, max_connections=1, batch_size=40) as mem:
        ids = [a.action_id for a in mem.actions.add_many(_actions(0))]
        assert _listed(r, 0) == ids
        assert [a.action_id for a in mem.actions.by_type("a0_0", "move", limit=3)] == \
            [ids[570], ids[540], ids[510]]

    async def main() -> list[str]:
        async with agentmem.connect_async(server.url, max_connections=1,
                                          batch_size=40) as amem:
            stored = await amem.actions.add_many(_actions(1))
            assert await amem.actions.get(stored[0].action_id, agent_id="a1_0") == stored[0]
            return [a.action_id for a in stored]

    r.script_flush()
    assert _listed(r, 1) == []
    assert asyncio.run(main()) == _listed(r, 1)


def test_large_writes_keep_their_order_after_the_server_lost_its_scripts(
        server: Any, r: redis.Redis) -> None:
    """A store that loaded its scripts, then a server without them (``SCRIPT FLUSH``, as
    after a restart or a failover): a large write (a bulk plan) loads its script ahead
    of its first call all the same, so another writer's reload cannot land in the middle
    of its calls."""
    with agentmem.connect(server.url, batch_size=40) as mem:
        mem.actions.add_many(_actions(9)[:50])  # the runner has loaded its scripts
        for _ in range(3):
            r.script_flush()
            got = _in_threads(mem)
            assert [_listed(r, k) for k in range(WRITERS)] == got
            for k in range(WRITERS):
                r.delete(f"simulation:s{k}:actions")
