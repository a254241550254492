"""Key-layout migrations on real 3-master clusters (Redis and Valkey): revision 0004
(layout 2 <-> 3) up and down through the CLI and the library, every master's keys
renamed and read back the same; revision 0005 (layout 3 <-> 4) up and down, every
types and targets key sorted by step and back; a runner killed with SIGKILL half-way
resumes from the master and cursor it saved; revisions to or from layout 1 refused
(docs/layouts.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.cli import main
from agentmem.errors import LayoutError
from agentmem.migrations import redis as mig
from agentmem.model.records import Action
from agentmem.plans.keyspace import LAYOUT_KEY
from agentmem.servers.local import LocalCluster

AGENTS = 40


@pytest.fixture
def cm(cm: ClusterMemory) -> ClusterMemory:  # (conftest's: every master flushed)
    cm.actions.add_many([
        Action(agent_id=f"a{i % AGENTS}", simulation_id=f"s{i % 3}", step_number=i,
               action_type=("move", "eat")[i % 2], reward=i / 7, details={"i": i, "é": [i]},
               action_target_id=f"t{i % 5}") for i in range(1200)])
    return cm


def _everything(mem: ClusterMemory) -> dict[str, Any]:
    return {f"a{a}": [x.model_dump(mode="json") for x in mem.actions.timeline(f"a{a}")]
            for a in range(AGENTS)}


def _client(cluster: LocalCluster) -> redis.RedisCluster:
    return redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])


def _hash_fields(cm: ClusterMemory) -> set[bytes]:
    """The field names of every action hash, on every master."""
    fields: set[bytes] = set()
    for node in cm.runner.primaries():
        client = cm.runner.node_client(node)
        for key in client.scan_iter(match="agent:{*}:action:*", count=500):
            if client.type(key) == b"hash":
                fields |= set(client.hkeys(key))
    return fields


def test_upgrade_0004_and_back_on_a_cluster_keeps_every_action(
        cm: ClusterMemory, cluster: LocalCluster) -> None:
    before = _everything(cm)
    masters_with_keys = [n for n in cm.runner.primaries() if cm.runner.node_client(n).dbsize()]
    assert len(masters_with_keys) == 3  # the walk has every master to do
    res = CliRunner().invoke(main, ["--redis-url", cluster.url, "migrate", "upgrade", "0004",
                                    "--batch", "50", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["revisions"] == ["0003", "0004"]
    assert report["counts"]["0004"]["renamed"] == 1200
    st = mig.status(cluster.url)
    assert (st.revision, st.layout, st.in_progress) == ("0004", 3, None)
    assert b"n" in _hash_fields(cm)
    assert b"step_number" not in _hash_fields(cm)
    with pytest.raises(LayoutError):
        connect_cluster(cluster.url).actions.timeline("a1")
    assert _everything(connect_cluster(cluster.url, layout_version=3)) == before
    back = mig.downgrade(cluster.url, "0003", batch=50)
    assert back.revisions == ["0004"]
    assert mig.status(cluster.url).layout == 2
    assert b"n" not in _hash_fields(cm)
    assert _everything(connect_cluster(cluster.url)) == before


def _index_kinds(cm: ClusterMemory) -> dict[bytes, bytes]:
    """The type of every types and targets key, on every master."""
    kinds: dict[bytes, bytes] = {}
    for node in cm.runner.primaries():
        client = cm.runner.node_client(node)
        for pattern in ("agent:{*}:action:types:*", "agent:{*}:action:targets:*"):
            for key in client.scan_iter(match=pattern, count=500):
                kinds[key] = client.type(key)
    return kinds


def _of_one(mem: ClusterMemory) -> dict[str, Any]:
    return {f"a{a}": ([x.action_id for x in mem.actions.by_type(f"a{a}", ("move", "eat")[a % 2])],
                      [x.action_id for x in mem.actions.by_target(f"a{a}", f"t{a % 5}", limit=4)])
            for a in range(AGENTS)}


def test_upgrade_0005_and_back_on_a_cluster_sorts_every_index(
        cm: ClusterMemory, cluster: LocalCluster) -> None:
    """Revision 0005 (layout 3 <-> 4) from layout 2 through 0004: every agent's types and
    targets keys, on every master, become sorted sets scored by step, and back."""
    before, of_one = _everything(cm), _of_one(cm)
    assert len(_index_kinds(cm)) == 2 * AGENTS
    assert set(_index_kinds(cm).values()) == {b"set"}
    report = mig.upgrade(cluster.url, "0005", batch=50)
    assert report.revisions == ["0003", "0004", "0005"]
    assert report.counts["0005"]["converted"] == 2 * AGENTS  # one type, one target each
    assert report.counts["0005"]["members"] == 2 * 1200
    assert "orphans" not in report.counts["0005"]
    assert mig.status(cluster.url).layout == 4
    assert set(_index_kinds(cm).values()) == {b"zset"}
    client = _client(cluster)
    assert client.zscore("agent:{a7}:action:types:eat", "a7-47-eat") == 47.0
    assert not list(client.scan_iter(match="agentmem:migrating:*", target_nodes="primaries"))
    with connect_cluster(cluster.url, layout_version=4) as mem4:
        assert _everything(mem4) == before
        assert _of_one(mem4) == of_one
    back = mig.downgrade(cluster.url, "0003", batch=50)
    assert back.revisions == ["0005", "0004"]
    assert set(_index_kinds(cm).values()) == {b"set"}
    assert _everything(connect_cluster(cluster.url)) == before


def test_a_killed_cluster_migration_resumes_from_its_saved_master_and_cursor(
        cm: ClusterMemory, cluster: LocalCluster) -> None:
    before = _everything(cm)
    mig.upgrade(cluster.url, "0003")
    client = _client(cluster)
    env = {**os.environ, mig.PAUSE_ENV: "0.03"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentmem.cli", "--redis-url", cluster.url, "migrate",
         "upgrade", "0004", "--batch", "20"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:  # killed once the walk is past the first master, not done
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            progress = client.hgetall(mig.CLUSTER_STATE.progress)
            cursor = progress.get(b"cursor", b"0").decode()
            if progress.get(b"phase") == b"rename" and cursor.split("|")[0] == "1":
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert client.get(LAYOUT_KEY) == b"2>3"
    st = mig.status(cluster.url)
    assert st.in_progress is not None
    assert st.in_progress["cursor"].startswith("1|")
    renamed_before = int(st.in_progress["n:renamed"])
    assert 0 < renamed_before < 1200
    report = mig.upgrade(cluster.url, "0004", batch=20)  # resumes where it stopped
    assert report.revisions == ["0004"]
    assert report.counts["0004"]["renamed"] == 1200
    assert mig.status(cluster.url).layout == 3
    assert _everything(connect_cluster(cluster.url, layout_version=3)) == before


def test_revisions_to_layout_1_are_refused_on_a_cluster(cm: ClusterMemory,
                                                        cluster: LocalCluster) -> None:
    mig.upgrade(cluster.url, "head")
    with pytest.raises(mig.MigrationError, match="layouts 2 to 4 only"):
        mig.downgrade(cluster.url, "base")
    st = mig.status(cluster.url)
    assert (st.revision, st.layout, st.in_progress) == ("0003", 2, None)
    assert _client(cluster).get(LAYOUT_KEY) == b"2"
