"""The ``agentmem`` command and the memory tiers on a Redis Cluster (3 masters, Redis and
Valkey, started once for the module): every command end to end with a ``redis+cluster://`` URL and a
SQLite archive; tier transitions and eviction leave the indices clean and the archive
complete; a crash between the two parts of a cluster's STM -> IM move is found by
``check`` and fixed by ``repair``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import demo_then_every_command

from agentmem import integrity
from agentmem.app.report import used_memory
from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.backends.sql import open_archive
from agentmem.model.records import Action
from agentmem.servers.local import LocalCluster, find_binary
from agentmem.tiers.maintenance import TierPolicy, Tiers


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    if find_binary(request.param) is None:
        pytest.skip(f"no {request.param} server binary")
    with LocalCluster(request.param) as c:
        yield c


@pytest.fixture
def cm(cluster: LocalCluster) -> Iterator[ClusterMemory]:
    mem = connect_cluster(cluster.url)
    for node in mem.runner.primaries():
        mem.runner.node_client(node).flushall()
    mem.settle_seconds = 0
    yield mem
    mem.close()


@pytest.mark.slow
def test_every_command_on_a_cluster(cluster: LocalCluster, cm: ClusterMemory,
                                    tmp_path: Path) -> None:
    assert cluster.url.startswith("redis+cluster://")
    base = ["--redis-url", cluster.url, "--archive-url", str(tmp_path / "archive.db"),
            "--data", str(tmp_path / "data")]
    demo_then_every_command(base, tmp_path, layout_version=2)


def test_memory_figures_sum_every_master(cm: ClusterMemory) -> None:
    """``report.used_memory`` (the demo's per-step series, the report's chart, ``stats``)
    is the masters' ``used_memory`` summed, not one node's."""
    cm.actions.add_many(_actions(30, 20))
    nodes = [cm.runner.node_client(n) for n in cm.runner.primaries()]
    before = [int(c.info("memory")["used_memory"]) for c in nodes]
    total = used_memory(cm)
    after = [int(c.info("memory")["used_memory"]) for c in nodes]
    assert len(nodes) == 3
    assert min(sum(before), sum(after)) * 0.95 <= total <= max(sum(before), sum(after)) * 1.05
    assert total > 1.5 * max(before + after)


def _actions(agents: int, steps: int) -> list[Action]:
    types = ["move", "eat", "attack"]
    return [Action(agent_id=f"a{a}", simulation_id=f"s{a % 2}", step_number=step,
                   action_type=types[(a + step) % 3], reward=((a * 7 + step) % 11) / 10,
                   action_target_id=f"a{(a + 1) % agents}" if step % 2 else None)
            for step in range(steps) for a in range(agents)]


def test_tiers_on_a_cluster_keep_the_indices_clean(cm: ClusterMemory, tmp_path: Path) -> None:
    actions = _actions(8, 20)
    cm.actions.add_many(actions)
    archive = open_archive(str(tmp_path / "a.db"))
    try:
        policy = TierPolicy(stm_steps=5, im_capacity=6)
        tiers = Tiers(cm, policy, archive=archive)  # type: ignore[arg-type]
        assert tiers.agents() == sorted({a.agent_id for a in actions})
        moved = tiers.transition("a0", ["a0-0-move", "a0-1-eat"])
        assert moved == ["a0-0-move", "a0-1-eat"]
        rep = tiers.maintain(now_step=19)
        assert rep.agents == 8
        assert rep.to_im == 8 * 15 - 2
        assert rep.evicted == 8 * (15 - 6)
        assert rep.refused == []
        assert integrity.check(cm).clean  # type: ignore[arg-type]
        assert archive.count() == 8 * 15  # everything that left STM, before it left
        for sim in ("s0", "s1"):
            left = cm.actions.simulation_actions(sim, 0, -1)
            assert {a.step_number for a in left} == set(range(15, 20))
            assert len(left) == 4 * 5
        tiers.pin("a1", "a1-19-attack")
        assert tiers.pinned("a1") == {"a1-19-attack"}
        tiers.unpin("a1", "a1-19-attack")
        assert tiers.pinned("a1") == set()
    finally:
        archive.close()


def test_a_crash_between_the_two_to_im_parts_is_repaired(cm: ClusterMemory,
                                                         monkeypatch: Any) -> None:
    actions = _actions(4, 6)
    cm.actions.add_many(actions)
    tiers = Tiers(cm, TierPolicy(stm_steps=2))  # type: ignore[arg-type]

    late: list[Any] = []

    def crash(self: Tiers, sims: Any) -> None:
        late.append(sims)
        raise KeyboardInterrupt("killed between the agent part and the simulation part")

    monkeypatch.setattr(Tiers, "_finish_on_simulations", crash)
    with pytest.raises(KeyboardInterrupt):
        tiers.maintain(now_step=5)
    monkeypatch.undo()
    found = integrity.check(cm)  # type: ignore[arg-type]
    moved = 4 * 4  # steps 0..3 of 4 agents left STM; their simulation entries stayed
    assert found.orphans["sim_actions"] == moved
    assert found.orphans["sim_step"] == moved
    assert found.orphans["sim_steps"] == 2 * 4  # steps 0..3 of each simulation
    assert found.counters["sim_by_type"] > 0
    assert set(found.orphans) == {"sim_actions", "sim_step", "sim_steps"}
    assert not found.missing
    fixed = integrity.repair(cm)  # type: ignore[arg-type]
    assert fixed.total == found.total
    assert integrity.check(cm).clean  # type: ignore[arg-type]
    for sim in ("s0", "s1"):
        left = cm.actions.simulation_actions(sim, 0, -1)
        assert {a.step_number for a in left} == {4, 5}
        counters = cm.client.hgetall(cm.actions.layout.key("sim_by_type", simulation_id=sim))
        assert sum(int(v) for v in counters.values()) == len(left)
    # the interrupted second part, run late, changes nothing more
    tiers._finish_on_simulations(late[0])
    assert integrity.check(cm).clean  # type: ignore[arg-type]


def test_agent_level_orphans_are_found_on_a_cluster(cm: ClusterMemory) -> None:
    cm.actions.add_many(_actions(3, 3))
    key = cm.actions.layout.key("action", agent_id="a1", action_id="a1-0-eat")
    cm.client.delete(key)  # as if it had expired: its index entries stay
    found = integrity.check(cm)  # type: ignore[arg-type]
    assert found.orphans["timeline"] == 1
    assert found.orphans["sim_actions"] == 1
    integrity.repair(cm)  # type: ignore[arg-type]
    assert integrity.check(cm).clean  # type: ignore[arg-type]


def test_commands_open_a_layout_3_cluster_in_its_layout(cluster: LocalCluster,
                                                        tmp_path: Path) -> None:
    """A cluster whose data is layout 3 (short hash fields): the commands read the layout
    the cluster records and answer as the store that wrote it."""
    from test_cli import ok

    mem3 = connect_cluster(cluster.url, layout_version=3)
    for node in mem3.runner.primaries():
        mem3.runner.node_client(node).flushall()
    try:
        mem3.actions.add_many(_actions(6, 5))
        want = [a.action_id for a in mem3.actions.by_type("a1", "eat")]
    finally:
        mem3.close()
    base = ["--redis-url", cluster.url, "--archive-url", str(tmp_path / "a.db"),
            "--data", str(tmp_path / "data")]
    out = ok([*base, "query", "--agent", "a1", "--type", "eat", "--json"]).stdout
    got = [json.loads(line)["action_id"] for line in out.splitlines()]
    assert got == want
    assert len(want) == 2
    assert ok([*base, "check", "--json"]).exit_code == 0
