"""Seeding the retired marks on a real 3-master cluster (agentmem.dualwrite.ids) while
another writer's seeding sets or replaces its markers master by master: the second
writer waits for it and takes what it finished instead of seeding again over it or
taking markers about to change; a master that lost its marker with no seeding running
is seeded at once; a seeding running on every master is joined at once; a seeded
cluster is taken at once; a sentinel left by a writer that died is joined after
``SEED_WAIT`` (docs/durability.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentmem.backends.cluster import ClusterMemory
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite import ids
from agentmem.model.records import Action
from agentmem.servers.local import LocalCluster

SIM = "sim_cluster_seeding"
AGENTS = 50
OTHER = b"other0writer0tok"  # the token of the seeding already running
BEFORE = b"before0seeding00"  # the markers' token before it (a reseed replaces them)


@pytest.fixture
def cm(cm: ClusterMemory) -> ClusterMemory:
    cm.runner.check_layout()  # layout 2 claimed while the cluster is empty
    return cm


@pytest.fixture
def rc(cluster: LocalCluster) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    yield client
    client.close()


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = open_archive(tmp_path / "a.db")
    a.write([Action(agent_id=f"x{i}", simulation_id=SIM, step_number=i, action_type="move")
             for i in range(AGENTS)])
    yield a
    a.close()


def _half_done(cm: ClusterMemory, rc: redis.RedisCluster, before: bytes | None = None
               ) -> list[str]:
    """Another writer's seeding on its last step: its marker set on the first master,
    its sentinel still on the others (retired_seeded.lua sets a master's marker and
    deletes its sentinel at once, master by master), whose markers are ``before``'s
    (a reseed after the first master lost its data) or missing."""
    markers = ids._markers(cm)  # type: ignore[arg-type]
    assert len(markers) == 3
    rc.set(markers[0], OTHER)
    for k in markers[1:]:
        rc.set(k + ":seeding", OTHER)
        if before is not None:
            rc.set(k, before)
    return markers


def _seed_within(cm: ClusterMemory, archive: Archive, seconds: float = 30) -> ids.Seeded:
    got: list[ids.Seeded] = []
    worker = threading.Thread(target=lambda: got.append(ids.seed(cm, archive)),  # type: ignore[arg-type]
                              daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the seeding still waits"
    return got[0]


def _finish(rc: redis.RedisCluster, markers: list[str]) -> None:
    for k in markers[1:]:
        rc.set(k, OTHER)
        rc.delete(k + ":seeding")


def _seed_while_finishing(cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
                          markers: list[str]) -> ids.Seeded:
    """:func:`_seed_within`, the other seeding (:func:`_half_done`) finishing 0.2 s in."""
    other = threading.Timer(0.2, _finish, (rc, markers))
    other.start()
    try:
        return _seed_within(cm, archive)
    finally:
        other.cancel()
        other.join()


def _looks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Each look's outcome: the markers found, or ids._FINISHING."""
    seen: list[Any] = []
    real = ids._look

    def counted(memory: Any, markers: list[str], patient: bool) -> Any:
        got = real(memory, markers, patient)
        seen.append(got if got is ids._FINISHING else got[0])
        return got

    monkeypatch.setattr(ids, "_look", counted)
    return seen


def _retired_keys(cm: ClusterMemory) -> int:
    return sum(1 for node in cm.runner.primaries()
               for _ in cm.runner.node_client(node).scan_iter("*retired*", count=1000))


@pytest.mark.parametrize("before", [None, BEFORE])
def test_a_seeding_finishing_master_by_master_is_waited_for_and_taken(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch, before: bytes | None) -> None:
    # before the fix, markers missing: the second writer took the first master's (free)
    # sentinel, joined the others', seeded again and set the first master's marker to
    # its own token; markers being replaced: it took (OTHER, BEFORE, BEFORE) at once,
    # and its restart guard tripped when they became OTHER's
    markers = _half_done(cm, rc, before)
    looks = _looks(monkeypatch)
    out = _seed_while_finishing(cm, rc, archive, markers)
    assert out.agents == 0  # nothing seeded: the other seeding did it
    assert out.tokens == (OTHER,) * 3
    assert [rc.get(k) for k in markers] == [OTHER] * 3
    assert not any(rc.exists(k + ":seeding") for k in markers)
    assert _retired_keys(cm) == 0
    assert 2 <= len(looks) < 100  # looked again, 10 ms apart
    assert looks[-1] == [OTHER] * 3
    assert ids.watch_restarts(cm, out)  # type: ignore[arg-type]  # the tokens it keeps


def test_markers_read_just_before_a_seeding_finishes_are_not_taken(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the other seeding finishes right after a read of the markers (and at the latest
    # 0.2 s in): before the fix the sentinels were looked at after the markers, found
    # gone, and the markers read before (OTHER, BEFORE, BEFORE) taken
    markers = _half_done(cm, rc, BEFORE)
    real = ids._state

    def finishing_after(memory: Any, keys: list[str]) -> Any:
        got = real(memory, keys)
        _finish(rc, markers)
        return got

    monkeypatch.setattr(ids, "_state", finishing_after)
    out = _seed_while_finishing(cm, rc, archive, markers)
    assert out.tokens == (OTHER,) * 3
    assert out.agents == 0
    assert _retired_keys(cm) == 0
    assert ids.watch_restarts(cm, out)  # type: ignore[arg-type]


def test_a_seeding_running_on_every_master_is_joined_at_once(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch) -> None:
    markers = ids._markers(cm)  # type: ignore[arg-type]
    for k in markers:  # still raising the marks: no marker set yet
        rc.set(k + ":seeding", OTHER)
    looks = _looks(monkeypatch)
    out = _seed_within(cm, archive)
    assert len(looks) == 1  # no waiting
    assert out.agents == AGENTS  # joined: raised the marks too
    assert out.tokens == (OTHER,) * 3  # and set the markers to the seeding's token
    assert [rc.get(k) for k in markers] == [OTHER] * 3
    assert not any(rc.exists(k + ":seeding") for k in markers)


def test_a_seeded_cluster_is_taken_at_once(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch) -> None:
    markers = ids._markers(cm)  # type: ignore[arg-type]
    for k in markers:
        rc.set(k, BEFORE)
    looks = _looks(monkeypatch)
    out = _seed_within(cm, archive)
    assert len(looks) == 1
    assert out.agents == 0
    assert out.tokens == (BEFORE,) * 3
    assert _retired_keys(cm) == 0


def test_a_master_that_lost_its_marker_with_no_seeding_running_is_seeded_at_once(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch) -> None:
    markers = ids._markers(cm)  # type: ignore[arg-type]
    rc.set(markers[0], OTHER)  # the others lost theirs (a restart): no sentinel
    looks = _looks(monkeypatch)
    out = _seed_within(cm, archive)
    assert len(looks) == 1  # no waiting
    assert out.agents == AGENTS
    assert len(set(out.tokens)) == 1
    assert out.tokens[0] != OTHER
    assert [rc.get(k) for k in markers] == list(out.tokens)
    assert _retired_keys(cm) == AGENTS


def test_a_sentinel_left_by_a_writer_that_died_is_joined_after_the_wait(
        cm: ClusterMemory, rc: redis.RedisCluster, archive: Archive,
        monkeypatch: pytest.MonkeyPatch) -> None:
    markers = _half_done(cm, rc)  # ... and its writer died there
    monkeypatch.setattr(ids, "SEED_WAIT", 0.3)
    looks = _looks(monkeypatch)
    out = _seed_within(cm, archive)
    assert len(looks) >= 3  # looked again while it waited
    assert out.agents == AGENTS  # then joined the sentinels and seeded
    assert [rc.get(k) for k in markers] == list(out.tokens)
    assert not any(rc.exists(k + ":seeding") for k in markers)
    assert _retired_keys(cm) == AGENTS
