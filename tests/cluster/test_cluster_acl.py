"""The cluster runner as an ACL user without ``+script|load`` (docs/security.md's rule
less that grant, plus the cluster's own): scripts an administrator loaded on every
master run, as on one server; a master without them refuses the write (``Refused``:
waiting does not fix an ACL), with nothing of it written. Before, the load the runner
sends ahead of a script's first call raised ``BackendError`` even where the master had
the script. A real 3-master cluster."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentmem.backends.cluster import connect_cluster
from agentmem.errors import Refused
from agentmem.lua.scripts import ALL
from agentmem.model.records import Action
from agentmem.servers.local import LocalCluster, find_binary

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    kind = "redis" if find_binary("redis") is not None else "valkey"
    if find_binary(kind) is None:
        pytest.skip("no server binary")
    c = LocalCluster(kind).start()  # type: ignore[arg-type]
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def url(cluster: LocalCluster) -> Iterator[str]:
    """A user of docs/security.md's rule without ``+script|load`` on every node."""
    found = re.findall(r"^(ACL SETUSER agentmem .+)$", SECURITY.read_text(), re.M)
    assert len(found) == 1
    password = secrets.token_hex(16)
    rule = [p for p in found[0].replace("PASSWORD", password).split() if p != "+script|load"]
    rule += ["+cluster|slots", "+cluster|shards", "+readonly", "+command"]  # the cluster grants
    for port in cluster.ports:
        with redis.Redis(port=port) as r:
            r.flushall()
            r.script_flush()
            r.execute_command(*rule)
    try:
        yield f"redis+cluster://agentmem:{password}@127.0.0.1:{cluster.ports[0]}"
    finally:
        for port in cluster.ports:
            with redis.Redis(port=port) as r:
                r.execute_command("ACL", "DELUSER", "agentmem")


def _actions() -> list[Action]:
    return [Action(agent_id=f"a{i % 9}", simulation_id="s1", step_number=i // 9,
                   action_type=("move", "eat")[i % 2], reward=i / 100)
            for i in range(60)]


def _keys(cluster: LocalCluster) -> int:
    total = 0
    for port in cluster.ports:
        with redis.Redis(port=port) as r:
            total += sum(1 for k in r.scan_iter() if not k.startswith(b"agentmem:"))
    return total


def test_scripts_an_administrator_loaded_run(cluster: LocalCluster, url: str) -> None:
    for port in cluster.ports:
        with redis.Redis(port=port) as r:
            for script in ALL:
                r.script_load(script.source)
    mem = connect_cluster(url)
    try:
        stored = mem.actions.add_many(_actions())
        assert len(stored) == 60
        for a in stored[:9]:
            assert mem.actions.get(a.action_id, agent_id=a.agent_id) == a
    finally:
        mem.close()


def test_a_master_without_the_scripts_refuses_the_write(cluster: LocalCluster,
                                                        url: str) -> None:
    mem = connect_cluster(url)
    try:
        with pytest.raises(Refused, match="load a script"):
            mem.actions.add_many(_actions())
    finally:
        mem.close()
    assert _keys(cluster) == 0


def test_a_plan_whose_other_calls_could_run_alone_is_refused_before_it_is_sent(
        cluster: LocalCluster, url: str) -> None:
    """A script the master lacks followed by a plain command in the same slot: the
    refused load raises before anything is sent (the command would run while the
    script's call is refused, and the write be reported refused though half done)."""
    from agentmem.lua.loader import Script
    from agentmem.plans.plan import Plan, command, script_call

    script = Script("probe", "redis.call('SET', KEYS[1], ARGV[1]) return 1")
    plan = Plan([script_call(script, ["v"], ["agent:{x}:a"]),
                 command("SET", "agent:{x}:b", "written")], lambda replies: replies)
    mem = connect_cluster(url)
    try:
        with pytest.raises(Refused, match="load a script"):
            mem.runner.run(plan)
    finally:
        mem.close()
    assert _keys(cluster) == 0
