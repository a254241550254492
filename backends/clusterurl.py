"""Redis Cluster URLs: which URLs name a cluster, their startup nodes and options, and
the redis-py client on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import redis
from redis.cluster import ClusterNode, RedisCluster

from agentmem.backends.failures import CLUSTER_LINK_ERRORS, connection_failure
from agentmem.errors import BackendError, ConfigError

__all__ = ["SCHEMES", "cluster_client", "is_cluster_url", "parse_nodes"]

SCHEMES = ("redis+cluster", "rediss+cluster", "valkey+cluster", "valkeys+cluster")
"""URL schemes that select the cluster backend (``--redis-url``, :func:`is_cluster_url`)."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a cluster (``redis+cluster://host:port``, see :data:`SCHEMES`)."""
    return url.split("://", 1)[0].lower() in SCHEMES


def parse_nodes(url_or_nodes: str | Sequence[str | tuple[str, int]]
                ) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes and connection options of a cluster URL
    (``redis+cluster://[user:password@]host:port[,host:port...]``, also ``redis://``,
    ``rediss+cluster://`` for TLS) or of a list of ``"host:port"`` / ``(host, port)``."""
    options: dict[str, Any] = {}
    if isinstance(url_or_nodes, str):
        url = url_or_nodes
        if "://" not in url:
            raise ConfigError(f"not a Redis Cluster URL: {url!r} "
                              "(expected redis+cluster://host:port)")
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower().removesuffix("+cluster")
        if scheme not in ("redis", "rediss", "valkey", "valkeys"):
            raise ConfigError(f"unsupported cluster URL scheme {scheme!r}; use one of {SCHEMES}")
        if scheme in ("rediss", "valkeys"):
            options["ssl"] = True
        netloc, _, path = rest.partition("/")
        path = path.split("?", 1)[0]
        if path not in ("", "0"):
            raise ConfigError(f"cluster URL {url!r}: a Redis Cluster has database 0 only")
        if "@" in netloc:
            auth, _, netloc = netloc.rpartition("@")
            user, colon, password = auth.partition(":")
            if colon:
                options["password"] = unquote(password)
                if user:
                    options["username"] = unquote(user)
            else:
                options["password"] = unquote(user)
        entries: list[str | tuple[str, int]] = [n for n in netloc.split(",") if n]
    else:
        entries = list(url_or_nodes)
    nodes = []
    for entry in entries:
        if isinstance(entry, tuple):
            host, port = entry
        else:
            host, _, text = entry.rpartition(":")
            if not host or not text.isdigit():
                raise ConfigError(f"bad cluster node {entry!r} (expected host:port)")
            port = int(text)
        if not 0 < int(port) < 65536:
            raise ConfigError(f"bad cluster node port {port!r}")
        nodes.append((str(host), int(port)))
    if not nodes:
        raise ConfigError("a Redis Cluster needs at least one startup node (host:port)")
    return nodes, options


def cluster_client(url_or_nodes: str | Sequence[str | tuple[str, int]],
                   **options: Any) -> RedisCluster:
    """A redis-py cluster client (bytes replies) on the startup nodes of a cluster URL or
    list, which has read the slot map: :class:`~agentmem.errors.Unavailable` when no
    node answers, :class:`~agentmem.errors.ConfigError` for a bad URL or option."""
    nodes, parsed = parse_nodes(url_or_nodes)
    try:
        return RedisCluster(startup_nodes=[_node_of(h, p) for h, p in nodes],
                            decode_responses=False, **{**parsed, **options})
    except CLUSTER_LINK_ERRORS as exc:
        raise connection_failure(f"Redis Cluster (at {nodes} is unreachable)", exc) from exc
    except redis.AuthenticationError as exc:
        raise BackendError(f"Redis Cluster refused the credentials: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad Redis Cluster option: {exc}") from None


def _node_of(host: str, port: int) -> ClusterNode:
    make: Any = ClusterNode
    node: ClusterNode = make(host, port)
    return node
