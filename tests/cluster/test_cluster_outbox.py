"""The dual writer's outbox on real 3-master clusters (Redis and Valkey): what a writer
acknowledged is listed in its outbox (one hash tag, one slot) before its write returns,
the archive write empties it, and a writer killed with SIGKILL loses nothing it
acknowledged: the next writer, or ``agentmem archive``, drains its outbox into the
archive, each action once (docs/durability.md, docs/cluster.md)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.backends.sql import open_archive
from agentmem.cli import main
from agentmem.dualwrite.outbox import CLUSTER_NAMES, drain
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import WriteError
from agentmem.model.records import Action
from agentmem.plans.keyspace import LAYOUT_KEY
from agentmem.servers.local import LocalCluster

SIM = "sim_cluster_outbox"
LEASE = 0.3


def _client(cluster: LocalCluster) -> redis.RedisCluster:
    return redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])


def _actions(n: int, start: int = 0) -> list[Action]:
    return [Action(agent_id=f"a{i % 11}", simulation_id=SIM, step_number=i,
                   action_type="move", reward=float(i)) for i in range(start, start + n)]


def test_the_outbox_lists_every_acknowledged_key_and_the_archive_write_empties_it(
        cm: ClusterMemory, cluster: LocalCluster, tmp_path: Path) -> None:
    client = _client(cluster)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(cm, archive, buffer_size=10_000)
        assert w.outbox is not None
        key = w.outbox.key
        assert key.startswith(CLUSTER_NAMES.prefix)
        stored = w.add_many(_actions(60))
        assert stored is not None
        listed = [k.decode() for k in client.lrange(key, 0, -1)]
        assert listed == [w.outbox.key_of(a) for a in stored]  # every key, in write order
        assert all(client.exists(k) for k in listed)  # in their agents' slots
        assert client.sismember(CLUSTER_NAMES.registry, key)
        assert client.exists(w.outbox.lease_key)
        w.flush()
        assert archive.count(SIM) == 60
        assert client.llen(key) == 0
        assert not client.sismember(CLUSTER_NAMES.registry, key)
        w.close()
        assert not client.exists(w.outbox.lease_key)


def test_a_refused_listing_reports_every_record_stored(cm: ClusterMemory,
                                                       cluster: LocalCluster) -> None:
    """The outbox's call comes after the records' own: when the outbox key is taken by
    another type, the write raises with every record reported stored (they are)."""
    client = _client(cluster)
    cm.actions.add(Action(agent_id="first", simulation_id=SIM, step_number=0,
                          action_type="move"))  # the cluster records its layout
    key = CLUSTER_NAMES.prefix + "taken"
    client.set(key, "not a list")
    repo = cm.actions.with_outbox(key, CLUSTER_NAMES.registry, key + ":lease", 30_000)
    with pytest.raises(WriteError) as err:
        repo.add_many(_actions(5))
    assert "not listed in the dual writer's outbox" in str(err.value)
    assert err.value.failed == {}
    # the entries in the simulation's slot were written all the same
    assert sorted(str(a.action_id) for a in cm.actions.simulation_actions(SIM)) == sorted(
        [*err.value.stored, "first-0-move"])
    held = sorted(str(a.action_id) for i in range(5) for a in cm.actions.timeline(f"a{i}"))
    assert sorted(err.value.stored) == held
    assert len(held) == 5


CHILD = """
import json, random, sys
from agentmem.backends.cluster import connect_cluster
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.model.records import Action
from agentmem.plans.keyspace import LAYOUT_KEY

url, db, mode, sim, lease, start = sys.argv[1:7]
w = DualWriter(connect_cluster(url), open_archive(db), durability=mode, lease=float(lease),
               buffer_size=250)
print("ready", flush=True)
rng, i = random.Random(), int(start)
while True:
    batch = [Action(agent_id=f"a{(i + k) % 7}", simulation_id=sim, step_number=(i + k) // 7,
                    action_type="move", reward=float(i + k)) for k in range(rng.randint(1, 40))]
    if mode == "buffered":
        for a in batch:
            w.add(a)
        w.flush()
    else:
        w.add_many(batch)
    print(json.dumps([i, i + len(batch)]), flush=True)
    i += len(batch)
"""


def _killed_child(url: str, db: Path, mode: str, start: int, after: float) -> set[float]:
    """Run a writer, read its acknowledgements until it is killed (SIGKILL) ``after``
    seconds in; the rewards it acknowledged."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(db), mode, SIM, str(LEASE),
                             str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    timer = threading.Timer(after, os.kill, (proc.pid, signal.SIGKILL))
    timer.start()
    acked: set[float] = set()
    for out in proc.stdout:
        lo, hi = json.loads(out)
        acked.update(float(x) for x in range(lo, hi))
    proc.wait(timeout=60)
    timer.cancel()
    assert proc.returncode == -signal.SIGKILL
    return acked


def _archived(db: Path) -> list[float]:
    with open_archive(db) as archive:
        return [float(a.reward) for a in archive.read(SIM) if a.reward is not None]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["redis", "buffered"])
def test_sigkill_on_a_cluster_loses_nothing_acknowledged(cm: ClusterMemory, cluster: LocalCluster,
                                                         tmp_path: Path, mode: str) -> None:
    db = tmp_path / "archive.db"
    rng = random.Random()
    acked: set[float] = set()
    drained = []
    for n in range(2):
        acked |= _killed_child(cluster.url, db, mode, n * 10_000_000, rng.uniform(0.5, 1.2))
        time.sleep(LEASE + 0.2)  # the dead writer's lease runs out
        with open_archive(db) as archive:
            w = DualWriter(connect_cluster(cluster.url), archive)  # drains at open
            assert not w.recovered.busy
            drained.append(w.recovered.read)
            w.close()
    rows = _archived(db)
    print(f"\ncluster SIGKILL x2 {mode}: acknowledged {len(acked)}, archived {len(set(rows))}, "
          f"drained at recovery {drained}")
    assert acked
    assert not acked - set(rows)
    assert len(rows) == len(set(rows))


def test_agentmem_archive_drains_a_stopped_writers_outbox_on_a_cluster(
        cm: ClusterMemory, cluster: LocalCluster, tmp_path: Path) -> None:
    db = tmp_path / "archive.db"
    acked = _killed_child(cluster.url, db, "redis", 0, 0.6)
    time.sleep(LEASE + 0.2)
    res = CliRunner().invoke(main, ["--redis-url", cluster.url, "--archive-url", str(db),
                                    "archive", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["missing"] == 0  # (the outbox may be empty: killed after an archive write)
    rows = _archived(db)
    assert acked
    assert not acked - set(rows)
    assert len(rows) == len(set(rows))
    with open_archive(db) as archive:  # nothing left to drain
        assert drain(cm, archive).read == 0


def test_a_master_that_lost_its_data_gets_the_retired_marks_again(
        cm: ClusterMemory, cluster: LocalCluster, tmp_path: Path) -> None:
    """Each master can restart empty on its own: the next writer seeds the retired marks
    again when any master lacks its marker, so no id the archive holds is given again."""
    db = tmp_path / "archive.db"
    first = [Action(agent_id=f"a{i}", simulation_id=SIM, step_number=0, action_type="move",
                    reward=1.0) for i in range(12)]
    with open_archive(db) as archive:
        w = DualWriter(cm, archive)
        w.add_many(first)
        w.close()
        assert archive.count(SIM) == 12
    layout_node = cm.runner.client.get_node_from_key(LAYOUT_KEY).name  # kept: stores open
    lost = next(n for n in cm.runner.primaries() if n.name != layout_node)
    cm.runner.node_client(lost).flushall()  # that master restarted without its data
    with open_archive(db) as archive:
        w = DualWriter(connect_cluster(cluster.url), archive)
        again = w.add_many([a.model_copy(update={"reward": 2.0}) for a in first])
        assert again is not None
        w.close()  # raised DuplicateId before: ids the archive held were given again
        rows = archive.read(SIM)
    assert len(rows) == 24
    assert sorted(float(r.reward) for r in rows) == [1.0] * 12 + [2.0] * 12  # type: ignore[arg-type]
    renamed = [str(a.action_id) for a in again if str(a.action_id).endswith(".r1")]
    assert renamed  # the agents of the lost master: their ids after the archived ones
    assert len({(r.agent_id, r.action_id) for r in rows}) == 24
