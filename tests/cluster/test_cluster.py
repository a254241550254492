"""The cluster backend against real 3-master clusters (Redis and Valkey), started once
per module: the repository contract compared with one server, the split write's crash
window found and repaired by integrity, failover with replicas, a cluster that is down."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest
import redis

import agentmem
from agentmem import integrity
from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.backends.clusterurl import is_cluster_url
from agentmem.errors import BackendError, ConfigError, DuplicateId, Unavailable, WriteError
from agentmem.model.records import Action
from agentmem.plans.plan import Call, Plan, every_reply
from agentmem.repository.base import _Write
from agentmem.servers.local import LocalCluster, LocalServer, find_binary


@pytest.fixture(scope="module", params=["redis", "valkey"])
def clusters(request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, LocalServer]]:
    """A 3-master cluster and, for reference, one server of the same kind."""
    kind = request.param
    if find_binary(kind) is None:
        pytest.skip(f"no {kind} server binary")
    cluster = LocalCluster(kind).start()
    single = LocalServer(kind).start()
    try:
        yield cluster, single
    finally:
        cluster.close()
        single.close()


def _flush(mem: ClusterMemory) -> None:
    for node in mem.runner.primaries():
        mem.runner.node_client(node).flushall()


@pytest.fixture
def cm(clusters: tuple[LocalCluster, LocalServer]) -> Iterator[ClusterMemory]:
    mem = connect_cluster(clusters[0].url)
    _flush(mem)
    mem.settle_seconds = 0
    yield mem
    mem.close()


@pytest.fixture
def ref(clusters: tuple[LocalCluster, LocalServer]) -> Iterator[agentmem.Memory]:
    mem = agentmem.connect(clusters[1].url, layout_version=2)
    mem.client.flushall()
    yield mem
    mem.close()


def _actions(n: int, agents: int = 7, sims: int = 2) -> list[Action]:
    types = ["move", "eat", "attack", "share"]
    return [Action(agent_id=f"agent_{i % agents}", simulation_id=f"sim{i % sims}",
                   step_number=i // (agents * 2), action_type=types[i % 4],
                   action_target_id=f"agent_{(i + 1) % agents}" if i % 3 else None,
                   reward=((i * 37) % 19) / 10 - 0.5, details={"i": i},
                   position=(i % 5, i % 3) if i % 2 else None)
            for i in range(n)]


def _dump(x: Any) -> Any:
    if isinstance(x, list):
        return [_dump(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_dump(v) for v in x)
    if hasattr(x, "model_dump"):
        return x.model_dump(exclude={"stored_at", "embedding"})
    if dataclasses.is_dataclass(x) and not isinstance(x, type):  # Lesson, SequenceAnalysis
        return {f.name: _dump(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: _dump(v) for k, v in x.items()}
    return x


def test_cluster_url_rule_and_layout_1_refused(clusters: tuple[LocalCluster, LocalServer]
                                                ) -> None:
    assert is_cluster_url("redis+cluster://127.0.0.1:7000")
    assert not is_cluster_url("redis://127.0.0.1:7000")
    with pytest.raises(ConfigError, match="layout 2"):
        connect_cluster(clusters[0].url, layout_version=1)
    with pytest.raises(ConfigError, match="database 0"):
        connect_cluster("redis+cluster://127.0.0.1:7000/3")


def _same_writes(*mems: Any) -> None:
    batch = _actions(400)
    dupes = [Action(agent_id="agent_1", simulation_id="sim1", step_number=0,
                    action_type="move", reward=1.0) for _ in range(3)]
    for mem in mems:
        mem.actions.add_many(batch)
        mem.actions.add_many(dupes)  # ids taken on the server: renumbered in the agent slot
        mem.actions.record(agent_id="agent_2", simulation_id="sim0", step_number=99,
                           action_type="eat", reward=2.0)


def _same_answers(cm: ClusterMemory, ref: agentmem.Memory) -> None:
    for name, args, kwargs in QUERIES:
        got = getattr(cm.actions, name)(*args, **kwargs)
        want = getattr(ref.actions, name)(*args, **kwargs)
        assert _dump(got) == _dump(want), name
    assert len(cm.actions.simulation_actions("sim1")) == 200 + 3
    assert len(cm.actions.near_at("sim1", 1.0, 1.0, 9.0)) == 200  # every action with a position


def test_same_results_as_one_server(cm: ClusterMemory, ref: agentmem.Memory) -> None:
    _same_writes(cm, ref)
    _same_answers(cm, ref)
    assert integrity.check(cm).clean


QUERIES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("get", ("agent_1-0-move.2",), {"agent_id": "agent_1"}),
        ("get_many", (["agent_1-0-move", "agent_1-0-move.3", "nope"],), {"agent_id": "agent_1"}),
        ("by_type", ("agent_3", "eat"), {}),
        ("by_type", ("agent_3", "move", 2), {}),
        ("by_target", ("agent_2", "agent_3"), {}),
        ("high_reward", ("agent_4", 0.5, None), {}),
        ("successful_interactions", ("agent_5", "agent_6", None), {}),
        ("timeline", ("agent_1", 3, 20), {}),
        ("timeline", ("agent_1",), {"newest_first": True, "limit": 5}),
        ("recent", ("agent_0", 7), {}),
        ("relative", ("agent_0", -3), {}),
        ("relative", ("agent_0", -25), {}),
        ("history", ("agent_1",), {}),
        ("at_step", ("sim1", 0), {}),
        ("at_step", ("sim0", 3, 4), {}),
        ("simulation_actions", ("sim0",), {}),
        ("simulation_actions", ("sim1", 5, 30), {}),
        ("simulation_actions", ("sim1", -10, -1), {}),
        ("steps", ("sim0",), {}),
        ("steps", ("sim1", 3, 9), {}),
        ("type_counts", ("sim0",), {}),
        ("type_counts", ("sim1",), {}),
        ("count", ("timeline",), {"agent_id": "agent_1"}),
        ("count", ("sim_actions",), {"simulation_id": "sim1"}),
        ("learn_from_past_actions", ("agent_2", "eat"), {}),
        ("analyze_action_sequence", ("agent_3", 5), {}),
        ("near", ("agent_1", 2, 1, 1.5), {}),
        ("near", ("agent_3", 0.5, 0.5, 3.0), {"action_type": ["eat", "move"], "limit": 4}),
        ("near_at", ("sim1", 2, 1, 1.5), {"step": 3}),
        ("near_at", ("sim0", 2.0, 1.0, 2.0), {"start": 2, "end": 20, "limit": 5}),
        ("near_at", ("sim1", 1.0, 1.0, 9.0), {"action_type": "eat"}),
    ]


@pytest.mark.parametrize("version", [3, 4])
def test_layout_3_same_results_as_one_server(clusters: tuple[LocalCluster, LocalServer],
                                             version: int) -> None:
    """Layout 3 (short hash fields) and 4 (also sorted type and target indices) on a
    cluster: the queries' cluster paths (simulation reads and radius search in two round
    trips, deletes in two slots, the two-part move to IM) read the fields under the
    layout's names and the indices as the layout keeps them, as one server does."""
    cm3 = connect_cluster(clusters[0].url, layout_version=version)
    ref3 = agentmem.connect(clusters[1].url, layout_version=version)
    try:
        _flush(cm3)
        cm3.settle_seconds = 0
        ref3.client.flushall()
        _same_writes(cm3, ref3)
        _same_answers(cm3, ref3)
        node = cm3.runner.node_client(cm3.client.get_node_from_key("agent:{agent_1}:x"))
        assert b"n" in node.hgetall("agent:{agent_1}:action:agent_1-0-move")
        for mem in (cm3, ref3):  # a hash of another simulation under sim1's ids: skipped
            client = mem.client if mem is ref3 else node
            client.hset("agent:{agent_1}:action:agent_1-0-move", "s", "sim9")
        for name, args, kwargs in [
                ("at_step", ("sim1", 0), {}), ("simulation_actions", ("sim1", 0, 20), {}),
                ("near_at", ("sim1", 1.0, 1.0, 9.0), {"step": 0}),
                ("get", ("agent_1-0-move",), {"simulation_id": "sim1"}),
                ("get", ("agent_1-0-move",), {"simulation_id": "sim9"})]:
            got = getattr(cm3.actions, name)(*args, **kwargs)
            assert _dump(got) == _dump(getattr(ref3.actions, name)(*args, **kwargs)), name
        assert "agent_1-0-move" not in [a.action_id for a in cm3.actions.at_step("sim1", 0)]
        for mem in (cm3, ref3):
            tiers = agentmem.Tiers(cast(Any, mem))
            assert tiers.transition("agent_3", ["agent_3-1-eat", "agent_3-3-move"]) == [
                "agent_3-1-eat", "agent_3-3-move"]
            assert mem.actions.delete("agent_5-2-eat", simulation_id="sim1")
            assert mem.actions.delete("agent_5-3-share", agent_id="agent_5")
            assert mem.actions.delete("agent_3-3-move")  # in IM
        for name, args, kwargs in [
                ("history", ("agent_3",), {}), ("simulation_actions", ("sim1",), {}),
                ("simulation_actions", ("sim0",), {}), ("type_counts", ("sim1",), {}),
                ("steps", ("sim1",), {}), ("at_step", ("sim1", 2), {}),
                ("get", ("agent_5-2-eat",), {})]:
            got = getattr(cm3.actions, name)(*args, **kwargs)
            assert _dump(got) == _dump(getattr(ref3.actions, name)(*args, **kwargs)), name
        im = cm3.im_actions.get("agent_3-1-eat", agent_id="agent_3")
        assert im is not None
        assert im.simulation_id == "sim1"
        assert cm3.actions.get("agent_5-2-eat") is None
        assert "agent_5-3-share" not in [a.action_id for a in cm3.actions.at_step("sim1", 3)]
    finally:
        cm3.close()
        ref3.close()


def test_duplicate_id_and_im_repository(cm: ClusterMemory) -> None:
    a = cm.actions.add(Action(agent_id="a1", simulation_id="s1", step_number=1,
                              action_type="move", action_id="a1-1-x"))
    with pytest.raises(DuplicateId):
        cm.actions.add(a.model_copy(update={"reward": 3.0}))
    assert [x.action_id for x in cm.actions.simulation_actions("s1")] == ["a1-1-x"]
    assert cm.actions.type_counts("s1") == {"move": 1}
    im = agentmem.IMAction(agent_id="a1", simulation_id="s1", step_number=1,
                           action_type="move", action_id="a1-1-x", importance=0.5)
    cm.im_actions.add(im)
    history = cm.actions.history("a1")
    assert [type(x).__name__ for x in history] == ["Action", "IMAction"]


def test_a_pinned_action_stays_on_a_cluster(cm: ClusterMemory) -> None:
    """The agent-slot part of the move checks the pinned set: a transition leaves a
    pinned action in STM and in the simulation-level indices."""
    cm.actions.add_many([Action(agent_id="a1", simulation_id="s1", step_number=s,
                                action_type="move") for s in range(3)])
    tiers = agentmem.Tiers(cast(Any, cm))
    assert tiers.pin("a1", "a1-0-move") == "stm"
    assert tiers.transition("a1", ["a1-0-move", "a1-1-move"]) == ["a1-1-move"]
    assert [a.action_id for a in cm.actions.timeline("a1")] == ["a1-0-move", "a1-2-move"]
    assert [a.action_id for a in cm.actions.simulation_actions("s1")] == [
        "a1-0-move", "a1-2-move"]
    assert integrity.check(cast(Any, cm)).clean


def test_crash_between_parts_found_and_repaired(cm: ClusterMemory,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cm.actions.add_many(_actions(40, agents=3, sims=1))

    def crash(self: Any) -> Any:
        raise Unavailable("simulated crash after the agent part")

    with monkeypatch.context() as mp:
        mp.setattr(_Write, "remote_plan", crash)
        with pytest.raises(Unavailable):
            cm.actions.add_many(_actions(60, agents=3, sims=1)[40:])
    # the 20 records are in their agents' slots, not in the simulation's indices
    assert len(cm.actions.timeline("agent_0")) == 20
    assert len(cm.actions.simulation_actions("sim0")) == 40
    found = integrity.check(cm)
    assert found.missing["sim_actions"] == 20
    assert found.missing["sim_step"] == 20
    assert found.counters["sim_by_type"] == 20
    fixed = integrity.repair(cm)
    assert fixed.repaired
    assert fixed.missing == found.missing
    assert integrity.check(cm).clean
    assert cm.actions.type_counts("sim0") == {"move": 15, "eat": 15, "attack": 15, "share": 15}
    assert len(cm.actions.simulation_actions("sim0")) == 60
    assert len(cm.actions.at_step("sim0", 3)) == 6
    # a recent write is left alone: its second part may be in flight
    cm.settle_seconds = 60
    with monkeypatch.context() as mp:
        mp.setattr(_Write, "remote_plan", crash)
        with pytest.raises(Unavailable):
            cm.actions.add(Action(agent_id="z", simulation_id="sim0", step_number=1,
                                  action_type="move"))
    assert integrity.check(cm).clean


def test_integrity_on_layout_3_finds_and_repairs_what_layout_2_does(
        clusters: tuple[LocalCluster, LocalServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """Layout 3 (short hash field names) on a cluster: the crash window, an orphaned
    hash, a missing timeline entry and a wrong counter, reported and repaired as on 2."""

    def crash(self: Any) -> Any:
        raise Unavailable("simulated crash after the agent part")

    def raw(mem: ClusterMemory, *args: Any) -> Any:
        return mem.runner.run(Plan((Call(args),), every_reply))[0]

    runs = {}
    for version in (2, 3, 4):
        mem = connect_cluster(clusters[0].url, layout_version=version)
        try:
            _flush(mem)
            mem.settle_seconds = 0
            lay = mem.actions.layout
            mem.actions.add_many(_actions(40, agents=3, sims=1))
            with monkeypatch.context() as mp:
                mp.setattr(_Write, "remote_plan", crash)
                with pytest.raises(Unavailable):
                    mem.actions.add_many(_actions(60, agents=3, sims=1)[40:])
            raw(mem, "DEL", lay.key("action", agent_id="agent_0", action_id="agent_0-0-move"))
            raw(mem, "ZREM", lay.key("timeline", agent_id="agent_1"), "agent_1-0-eat")
            raw(mem, "HSET", lay.key("sim_by_type", simulation_id="sim0"), "fly", 2)
            found = integrity.check(mem)
            fixed = integrity.repair(mem)
            assert integrity.check(mem).clean, version
            counts = raw(mem, "HGETALL", lay.key("sim_by_type", simulation_id="sim0"))
            runs[version] = found, fixed, counts
        finally:
            mem.close()
    (f2, x2, c2), (f3, x3, c3), (f4, x4, c4) = runs[2], runs[3], runs[4]
    assert f2.missing["sim_actions"] == 20
    assert f2.missing["timeline"] == 1
    assert f2.orphans["timeline"] == 1
    assert c4 == c3
    for a, b in ((f2, f3), (x2, x3), (f2, f4), (x2, x4)):
        assert (a.orphans, a.missing, a.counters) == (b.orphans, b.missing, b.counters)
        assert {k: sorted(v) for k, v in a.samples.items()} == \
            {k: sorted(v) for k, v in b.samples.items()}
    assert (x2.orphans, x2.missing) == (f2.orphans, f2.missing)
    assert c3 == c2
    assert sum(int(v) for v in c3.values()) == 59


def test_scripts_reloaded_per_node(cm: ClusterMemory) -> None:
    cm.actions.add_many(_actions(30))
    for node in cm.runner.primaries():
        cm.runner.node_client(node).script_flush()
    assert len(cm.actions.add_many(_actions(60)[30:])) == 30
    assert len(cm.actions.simulation_actions("sim0")) == 30


def test_a_batch_write_new_to_its_node_runs_before_the_reads_after_it(cm: ClusterMemory
                                                                       ) -> None:
    for node in cm.runner.primaries():
        cm.runner.node_client(node).script_flush()
    assert cm.actions.recent("agent_1", 5) == []  # the read's script loaded, not the write's
    with cm.batch() as b:
        b.actions.add(Action(agent_id="agent_1", simulation_id="sim0", step_number=1,
                             action_type="move"))
        seen = b.actions.recent("agent_1", 5)
    assert [a.action_id for a in seen.result()] == ["agent_1-1-move"]


@pytest.mark.slow
def test_failover_and_cluster_down() -> None:
    if find_binary("redis") is None:
        pytest.skip("no redis server binary")
    cluster = LocalCluster("redis", replicas=1, node_timeout=1000).start()
    try:
        mem = connect_cluster(cluster.url, socket_timeout=2, socket_connect_timeout=1)
        acked: list[Action] = []
        errors: list[Exception] = []
        victim = None
        deadline = time.monotonic() + 40
        step = 0
        while step < 40:
            assert time.monotonic() < deadline, f"writes did not resume: {errors[-3:]}"
            if step == 10 and victim is None:
                # the master of agent_0's slot
                slot = mem.client.keyslot("agent:{agent_0}:action:timeline")
                node = mem.client.nodes_manager.get_node_from_slot(slot)
                victim = cluster.ports.index(node.port)
                cluster.stop(victim)
            batch = [Action(agent_id=f"agent_{i}", simulation_id="sim", step_number=step,
                            action_type="move") for i in range(6)]
            try:
                acked += mem.actions.add_many(batch)
            except (Unavailable, BackendError) as exc:
                errors.append(exc)
                time.sleep(0.2)
                continue
            step += 1
        assert victim is not None
        assert errors, "the failover raised no error in between"
        assert all(isinstance(e, (Unavailable, BackendError)) for e in errors)
        assert cluster.master_of(cluster.ports[victim + 3])  # its replica took over
        for i in range(6):
            ids = [str(a.action_id) for a in acked if a.agent_id == f"agent_{i}"]
            stored = mem.actions.get_many(ids, agent_id=f"agent_{i}")
            assert None not in stored, "an acknowledged write was lost"
        listed = {str(a.action_id) for a in mem.actions.simulation_actions("sim")}
        assert {str(a.action_id) for a in acked} <= listed
        for n in range(len(cluster.nodes)):
            cluster.kill(n)
        with pytest.raises(Unavailable):
            mem.actions.add(Action(agent_id="a", simulation_id="s", step_number=0,
                                   action_type="move"))
        with pytest.raises(Unavailable):
            mem.actions.timeline("agent_1")
        with pytest.raises(Unavailable):
            connect_cluster(cluster.url, socket_connect_timeout=0.5)
        mem.close()
    finally:
        cluster.close()


def test_cli_uses_the_cluster(cm: ClusterMemory, clusters: tuple[LocalCluster, LocalServer]
                              ) -> None:
    from click.testing import CliRunner

    from agentmem.cli import main

    cm.actions.add_many([Action(agent_id="a1", simulation_id="s", step_number=i,
                                action_type="move") for i in range(5)])
    runner = CliRunner()
    url = clusters[0].url
    res = runner.invoke(main, ["--redis-url", url, "query", "--agent", "a1", "--steps", "1:3",
                               "--json"])
    assert res.exit_code == 0, res.output
    assert res.output.count("a1-") == 3
    res = runner.invoke(main, ["--redis-url", url, "check"])
    assert res.exit_code == 0, res.output
    assert "clean" in res.output


def test_a_simulation_never_reads_another_simulations_action(cm: ClusterMemory) -> None:
    """Issue 17, item 7, on the cluster paths (two round trips): an id of s1's indices
    given again to s2's action after s1's left memory is not read as s1's."""
    first = cm.actions.add(Action(agent_id="a1", simulation_id="s1", step_number=5,
                                  action_type="move", position=(1.0, 2.0)))
    cm.runner.client.delete(f"agent:{{a1}}:action:{first.action_id}")  # lost
    cm.runner.client.zrem("agent:{a1}:action:timeline", first.action_id)
    second = cm.actions.add(first.model_copy(update={"simulation_id": "s2"}))
    assert second.action_id == first.action_id
    assert cm.actions.at_step("s1", 5) == []
    assert cm.actions.simulation_actions("s1") == []
    assert cm.actions.near_at("s1", 1.0, 2.0, 1.0, step=5) == []
    assert [a.simulation_id for a in cm.actions.at_step("s2", 5)] == ["s2"]
    assert [n.record.simulation_id for n in cm.actions.near_at("s2", 1.0, 2.0, 1.0)] == ["s2"]


def test_sequence_analytics_and_similarity_on_a_cluster(cm: ClusterMemory,
                                                        ref: agentmem.Memory) -> None:
    """Every search call routes to the agent's slot: the same answers as one server."""
    from agentmem.search import sequences, similarity

    rng = np.random.default_rng(5)
    batch = [Action(agent_id=f"agent_{i % 3}", simulation_id="sim0", step_number=i // 3,
                    action_type=("move", "eat", "attack")[i % 4 % 3],
                    reward=float(i % 5) / 4, embedding=rng.random(8).astype(np.float32))
             for i in range(120)]
    for mem in (cm, ref):
        mem.actions.add_many(batch)
    for agent in ("agent_0", "agent_2"):
        want = sequences.read_window(ref, agent, 3, 30)
        got = sequences.read_window(cm, agent, 3, 30)
        assert got.ids == want.ids
        assert got.types == want.types
        def text(x: Any) -> str:
            return repr(_dump(x)).replace("\n", "")  # numpy arrays as their repr

        assert text(sequences.analyze(cm, agent, limit=20)) == text(
            sequences.analyze(ref, agent, limit=20))
        q = rng.random(8).astype(np.float32)
        with similarity.SimilarityIndex(cm) as a, similarity.SimilarityIndex(ref) as b:
            assert [(m.action.action_id, round(m.score, 5)) for m in a.search(agent, q, 5)] == \
                [(m.action.action_id, round(m.score, 5)) for m in b.search(agent, q, 5)]
        assert [m.action.action_id for m in similarity.brute_force(cm, agent, q, 5)] == \
            [m.action.action_id for m in similarity.brute_force(ref, agent, q, 5)]
    # the Query Engine's calls: a documented Unsupported (docs/cluster.md)
    from agentmem import Q, Unsupported
    from agentmem.search.vectorindex import ServerVectorIndex

    for call in (lambda: cm.actions.query(Q.reward > 0.5), lambda: cm.actions.query_count(),
                 lambda: cm.actions.similar(rng.random(8).astype(np.float32)),
                 lambda: ServerVectorIndex(cm).search("agent_0", rng.random(8), 3)):
        with pytest.raises(Unsupported):
            call()


def test_orm_verbs_on_cluster(cm: ClusterMemory) -> None:
    """exists, get by id alone and per-agent pages work; update and delete of an action
    run the agent's slot, then the simulation's; pages of simulation-level queries raise
    Unsupported; a declared model whose indices share its record's slot is updated and
    deleted in one script call."""
    from agentmem import Action, Identifier, Record, SetIndex, SortedIndex, Unsupported, declare

    a = cm.actions
    for step in range(30):
        a.record(agent_id="w-1", simulation_id="cs", step_number=step,
                 action_type=("move", "eat")[step % 2], reward=step / 10)
    assert a.exists("w-1-3-eat")
    assert a.get("w-1-3-eat") == a.get("w-1-3-eat", agent_id="w-1")
    got, cursor = [], None
    while True:
        page = a.page("by_type", "w-1", "move", cursor=cursor, size=4)
        got += page.items
        cursor = page.cursor
        if cursor is None:
            break
    assert got == a.by_type("w-1", "move")
    first = a.get("w-1-3-eat")
    assert first is not None
    # update: the agent's slot, then the step's grid in the simulation's
    moved = a.update(Action.model_validate({**first.model_dump(), "reward": 1.0,
                                            "position": (7.0, 8.0)}))
    assert a.get("w-1-3-eat") == moved
    assert "w-1-3-eat" in [x.action_id for x in a.high_reward("w-1", 0.95, None)]
    assert [n.record.action_id for n in a.near_at("cs", 7.0, 8.0, 0.5)] == ["w-1-3-eat"]
    assert [n.record.action_id for n in a.near("w-1", 7.0, 8.0, 0.5)] == ["w-1-3-eat"]
    assert integrity.check(cm).clean
    with pytest.raises(Unsupported):
        a.page("at_step", "cs", 3)
    # delete: the agent's slot, then the simulation's: gone from every index
    steps_before = a.steps("cs")
    assert a.delete("w-1-3-eat") is True
    assert a.get("w-1-3-eat") is None
    assert "w-1-3-eat" not in [x.action_id for x in a.simulation_actions("cs")]
    assert "w-1-3-eat" not in [x.action_id for x in a.at_step("cs", 3)]
    assert a.steps("cs") == [st for st in steps_before if st != 3]  # its only action
    assert a.delete("w-1-3-eat") is False
    assert integrity.check(cm).clean

    class Note(Record):
        note_id: str
        agent_id: Identifier
        step: int
        tag: str

    notes = cm.repository(declare(
        Note, key="note:{{{agent_id}}}:{note_id}", id="note_id",
        indexes=[SortedIndex("by_step", "note:{{{agent_id}}}:steps", score="step"),
                 SetIndex("by_tag", "note:{{{agent_id}}}:tag:{tag}")]))
    n = notes.add(Note(note_id="n1", agent_id="w-1", step=1, tag="x"))
    notes.update(Note.model_validate({**n.model_dump(), "tag": "y"}))
    assert [x.note_id for x in notes.members("by_tag", agent_id="w-1", tag="y")] == ["n1"]
    assert notes.members("by_tag", agent_id="w-1", tag="x") == []
    assert notes.delete("n1", agent_id="w-1") is True
    assert notes.range("by_step", agent_id="w-1") == []


def test_a_batch_on_a_cluster(cm: ClusterMemory, ref: agentmem.Memory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's calls are grouped by node, in one round trip to each (in parallel);
    the same results as one server's batch; a write's entries in the simulation's slot
    follow in one more round trip; the calls of one agent keep their order."""
    from agentmem.backends.cluster import ClusterRunner

    data = _actions(60)
    stored = cm.actions.add_many(data)
    ref.actions.add_many(data)
    agents = sorted({a.agent_id for a in data})
    trips = [0]
    run_once = ClusterRunner._run_once

    def counted(self: ClusterRunner, plan: Any) -> Any:
        trips[0] += 1
        return run_once(self, plan)

    monkeypatch.setattr(ClusterRunner, "_run_once", counted)
    nodes = {cm.client.get_node_from_key(f"agent:{{{a}}}:action:timeline").name
             for a in agents}
    assert len(nodes) > 1  # the agents' calls go to several nodes
    got, want = [], []
    for mem, out in ((cm, got), (ref, want)):
        with mem.batch() as b:
            for a in agents:
                out.append(b.actions.recent(a, 4))
                out.append(b.actions.by_type(a, "move", limit=3))
            out.append(b.actions.type_counts("sim0"))
    assert trips[0] == 1
    assert [_dump(h.result()) for h in got] == [_dump(h.result()) for h in want]
    trips[0] = 0
    with cm.batch() as b:
        added = b.actions.add(Action(agent_id="agent_1", simulation_id="sim0", step_number=99,
                                     action_type="rest"))
        seen = b.actions.recent("agent_1", 1)
        dup = b.actions.add(stored[0])  # its id is taken
    assert trips[0] == 2  # the write's simulation-level entries: one more round trip
    assert [a.action_id for a in seen.result()] == [added.result().action_id]
    with pytest.raises(DuplicateId):
        dup.result()
    assert cm.actions.at_step("sim0", 99) == [added.result()]


def _cluster_contents(mem: ClusterMemory) -> dict[bytes, Any]:
    """Every key of every master but the layout marker (written on a store's first
    call): its content (a hash's write time only as present)."""
    out: dict[bytes, Any] = {}
    for node in mem.runner.primaries():
        client = mem.runner.node_client(node)
        for key in client.scan_iter(count=1000):
            if key == b"agentmem:layout":
                continue
            t = client.type(key)
            if t == b"hash":
                content: Any = client.hgetall(key)
                content.pop(b"stored_at", None)
            elif t == b"zset":
                content = client.zrange(key, 0, -1, withscores=True)
            elif t == b"set":
                content = sorted(client.smembers(key))
            elif t == b"list":
                content = client.lrange(key, 0, -1)
            else:
                content = client.get(key)
            out[key] = (t, content)
    return out


def test_add_rows_stores_what_add_many_stores(cm: ClusterMemory) -> None:
    batch = _actions(200)
    fields = set(Action.model_fields) - {"action_id", "stored_at", "embedding"}
    data = [{k: v for k, v in a.__dict__.items() if k in fields} for a in batch]
    ids = [a.action_id for a in cm.actions.add_many(batch)]
    want = _cluster_contents(cm)
    _flush(cm)
    cm.actions._cell_state = 0  # a store new to the grid cell, as for add_many
    assert cm.actions.add_rows(data) == ids
    assert _cluster_contents(cm) == want
    _flush(cm)
    cm.actions._cell_state = 0
    cols = {k: [d[k] for d in data] for k in fields}
    assert cm.actions.add_columns(cols) == ids
    assert _cluster_contents(cm) == want


def test_a_refused_simulation_part_also_reports_the_records_refused_whole(
        cm: ClusterMemory, clusters: tuple[LocalCluster, LocalServer]) -> None:
    """The write's error once its follow-ups ran: the record whose simulation entries
    were refused (stored, listed in ``stored``) and the one refused whole, both in
    ``failed``."""
    cm.actions.add(Action(agent_id="a1", simulation_id="s", step_number=0,
                          action_type="move", action_id="a1-0-taken"))
    client = redis.RedisCluster(host="127.0.0.1", port=clusters[0].ports[0])
    client.set(cm.actions.layout.key("sim_actions", simulation_id="s2"), "not a list")
    with pytest.raises(WriteError) as err:
        cm.actions.add_many([
            Action(agent_id="a1", simulation_id="s", step_number=0, action_type="move",
                   action_id="a1-0-taken"),  # refused whole: the id is taken
            Action(agent_id="a2", simulation_id="s2", step_number=1, action_type="move"),
        ])
    assert err.value.stored == ["a2-1-move"]
    assert err.value.failed[0].startswith("EXISTS")
    assert "WRONGTYPE" in err.value.failed[1]
    assert [str(a.action_id) for a in cm.actions.timeline("a2")] == ["a2-1-move"]
