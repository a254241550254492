"""A runner for administration (the key-layout migrations of
:mod:`agentmem.migrations.redis`): plans on one server or a Redis Cluster, without the
store's layout check, since a migration is what changes the layout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from agentmem.backends.cluster import ClusterRunner
from agentmem.backends.clusterurl import cluster_client, is_cluster_url
from agentmem.backends.redis import RedisRunner
from agentmem.backends.redisurl import parse_url
from agentmem.errors import ConfigError

__all__ = ["admin_runner"]


@contextmanager
def admin_runner(url: str) -> Iterator[RedisRunner | ClusterRunner]:
    """A blocking runner on the server at ``url`` that checks no layout, closed on exit;
    a :class:`~agentmem.backends.cluster.ClusterRunner` for a cluster URL
    (``redis+cluster://``, the CLI's rule), which reads the slot map now.

    Nothing is sent until the first plan; a server that cannot be reached raises
    :class:`~agentmem.errors.Unavailable` there, a refusal (a wrong password, an ACL)
    :class:`~agentmem.errors.Refused`, and a malformed URL
    :class:`~agentmem.errors.ConfigError` here.
    """
    if is_cluster_url(url):
        runner = ClusterRunner(cluster_client(url), None, spin_us=0)
        try:
            yield runner
        finally:
            runner.close()
        return
    url, _ = parse_url(url)
    try:
        client = redis.Redis.from_url(url, decode_responses=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad Redis URL: {exc}") from None
    try:
        yield RedisRunner(client, None, spin_us=0)
    finally:
        client.close()
