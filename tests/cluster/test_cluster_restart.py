"""A master of a Redis Cluster that restarts empty between two calls of a dual writer:
the next write spans every master, and the runner's restart guard refuses it whole
before any node's part is sent (``ClusterRunner._admit_all``). Before, the restarted
master's part was refused while the others' were stored (unlisted in the outbox), the
writer journaled the whole call, and the replay stored those actions a second time in
Redis under other ids. Real cluster, real restart (``backends/restarts.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentmem.backends.cluster import connect_cluster
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.model.records import Action
from agentmem.servers.local import LocalCluster, find_binary

SIM = "sim-cluster-restart"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server binary")
    c = LocalCluster("redis").start()
    yield c
    c.close()


def act(tag: int, agent: str, step: int) -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=step, action_type="move",
                  reward=float(tag), details={"tag": tag})


def test_a_master_restarted_between_two_calls_stores_nothing_twice(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """The ids at stake are ``.r<n>`` ids (steps at or below the retired marks seeded
    from the archive), which the write script gives and the journal cannot guess: a part
    stored by the other masters is then a second copy after the replay."""
    agents = [f"ag{i}" for i in range(30)]  # spread over the three masters
    archive = open_archive(tmp_path / "a.db")
    tag = 0
    first = []
    for agent in agents:
        for step in (0, 1):
            tag += 1
            first.append(act(tag, agent, step))
    with connect_cluster(cluster.url) as mem0:
        w0 = DualWriter(mem0, archive)
        w0.add_many(first)
        w0.close()
    for node in cluster.nodes:  # all lose their data: the next writer seeds the marks
        node.stop()
        node.start()
    cluster.wait_ok(30)
    mem = connect_cluster(cluster.url)
    w = DualWriter(mem, archive, buffer_size=10_000, interval=1e6)
    for _ in range(2):
        if _ == 1:
            victim = cluster.nodes[1]
            victim.stop()
            victim.start()
            cluster.wait_ok(30)
        batch = []
        for agent in agents:
            tag += 1
            batch.append(act(tag, agent, 1))
        w.add_many(batch)  # the second: refused whole by the guard, journaled, replayed
    assert mem.runner.guard.trips >= 1
    w.close()
    rows = archive.read(SIM)
    assert sorted(int(a.details["tag"]) for a in rows) == list(range(1, tag + 1))
    assert len({(a.agent_id, a.action_id) for a in rows}) == len(rows)
    archived = {(a.agent_id, str(a.action_id)): int(a.details["tag"]) for a in rows}
    held = [(a.agent_id, str(a.action_id), int(a.details["tag"]))
            for agent in agents for a in mem.actions.timeline(agent)]
    assert all(archived.get((agent, aid)) == t for agent, aid, t in held)
    copies = Counter(t for _, _, t in held)
    assert not [t for t, n in copies.items() if n > 1]
    archive.close()
    mem.close()


def _noscripts(cluster: LocalCluster) -> int:
    """``NOSCRIPT`` replies the masters gave since they (re)started."""
    total = 0
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as r:
            total += int(r.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0))
    return total


def test_masters_restarted_in_place_count_as_new_to_the_runner(cluster: LocalCluster) -> None:
    """Every master restarted on its address, empty, without its scripts: before the
    next plan of several calls on a master, the runner's connection to it connects
    again, so it forgets what it had loaded there and loads each script ahead of its
    first call (no call is refused with ``NOSCRIPT`` and sent again after its
    successors, while another writer could load the script meanwhile)."""
    agents = [f"ag{i}" for i in range(30)]  # spread over the three masters
    with connect_cluster(cluster.url) as mem:
        mem.actions.add_many([act(i, a, 0) for i, a in enumerate(agents)])
        assert [len(mem.actions.recent(a, 5)) for a in agents] == [1] * len(agents)
        for node in cluster.nodes:
            node.stop()
            node.start()
        cluster.wait_ok(30)
        mem.actions.add_many([act(i, a, 1) for i, a in enumerate(agents)])
        assert _noscripts(cluster) == 0
        got = [[x.step_number for x in mem.actions.recent(a, 5)] for a in agents]
    assert got == [[1]] * len(agents)  # the step before the restart is gone with it
    assert _noscripts(cluster) == 0
