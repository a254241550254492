"""What the cluster test modules share: a real 3-master cluster of each kind, started
once per module, and a ``ClusterMemory`` on it with every master flushed."""

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
def cm(cluster: LocalCluster) -> Iterator[ClusterMemory]:
    mem = connect_cluster(cluster.url)
    for node in mem.runner.primaries():
        mem.runner.node_client(node).flushall()
    yield mem
    mem.close()
