"""On a real 3-master cluster: integrity.repair of an expired action's index entries
raises the agent's retired mark first, so its id is not given again (as on one server,
tests/integration/test_review_ids_im.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentmem import integrity
from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.model.records import Action
from agentmem.plans.plan import Call, Plan, every_reply
from agentmem.servers.local import LocalCluster, find_binary


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    if find_binary("redis") is None:
        pytest.skip("no redis server binary")
    c = LocalCluster("redis").start()
    try:
        yield c
    finally:
        c.close()


def _raw(mem: ClusterMemory, *args: Any) -> Any:
    return mem.runner.run(Plan((Call(args),), every_reply))[0]


@pytest.mark.parametrize("version", [2, 3])
def test_repair_on_a_cluster_does_not_give_an_expired_id_again(cluster: LocalCluster,
                                                               version: int) -> None:
    mem = connect_cluster(cluster.url, layout_version=version)
    try:
        for node in mem.runner.primaries():
            mem.runner.node_client(node).flushall()
        mem.settle_seconds = 0
        lay = mem.actions.layout

        def add(step: int, sim: str = "s1") -> str:
            return str(mem.actions.add(Action(agent_id="a1", simulation_id=sim,
                                              step_number=step, action_type="move")).action_id)

        assert add(5) == "a1-5-move"
        assert add(7, sim="s9") == "a1-7-move"
        _raw(mem, "DEL", lay.key("action", agent_id="a1", action_id="a1-5-move"))
        _raw(mem, "DEL", lay.key("action", agent_id="a1", action_id="a1-7-move"))
        # a1-7-move's simulation-level entries are gone too: its simulation is not known
        _raw(mem, "DEL", lay.key("sim_actions", simulation_id="s9"))
        _raw(mem, "DEL", lay.key("sim_step", simulation_id="s9", step_number=7))
        fixed = integrity.repair(mem)
        assert fixed.orphans["timeline"] == 2
        assert integrity.check(mem).clean
        retired = lay.key("retired", agent_id="a1")
        assert _raw(mem, "HGET", retired, "s1") == b"5"
        assert _raw(mem, "HGET", retired, ":any") == b"7"
        assert add(5) == "a1-5-move.r1"
        assert add(7, sim="s9") == "a1-7-move.r2"
        assert add(8) == "a1-8-move"
    finally:
        mem.close()
