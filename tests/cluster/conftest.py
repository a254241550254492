"""Fixtures of the cluster tests: a real 3-master cluster per module (Redis, then Valkey),
and a store on it with every master flushed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.servers.local import LocalCluster, find_binary


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    if find_binary(request.param) is None:
        pytest.skip(f"no {request.param} server binary")
    c = LocalCluster(request.param).start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def fresh(cluster: LocalCluster) -> Iterator[ClusterMemory]:
    """A layout-2 store on the cluster, every master flushed first."""
    mem = connect_cluster(cluster.url)
    for node in mem.runner.primaries():
        mem.runner.node_client(node).flushall()
    yield mem
    mem.close()
