"""Commands that go to every node holding data: the server, or each master of a
Redis Cluster (SCAN, INFO, TIME). A plan goes to the node of its keys; these have
no key, so the backend sends them node by node."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import redis

from agentmem.backends.failures import LINK_ERRORS, connection_failure
from agentmem.backends.redis import Memory, RedisRunner
from agentmem.plans.plan import Plan, command, every_reply

__all__ = ["master_size", "read_unchecked", "scan_keys", "scan_master", "server_time",
           "used_memory"]


def _masters(memory: Any) -> list[Any]:
    """Clients of the nodes that hold the data: the server, or every master of a Redis
    Cluster (in slot-map order)."""
    runner: Any = getattr(memory, "runner", None)
    if runner is not None and getattr(runner, "cluster", False):
        return [runner.node_client(node) for node in runner.primaries()]
    return [memory.client]


T = TypeVar("T")


def _guarded(call: Callable[[], T]) -> T:
    """``call()``, a lost or refused connection raised as Unavailable or Refused."""
    try:
        return call()
    except LINK_ERRORS as exc:
        raise connection_failure("Redis", exc) from exc


def scan_keys(memory: Any, match: str, batch: int) -> Iterable[Any]:
    """SCAN MATCH on the server, or on every master of a Redis Cluster."""
    for client in _guarded(lambda: _masters(memory)):
        keys: Iterator[Any] = iter(client.scan_iter(match=match, count=batch))
        while True:
            key = _guarded(lambda it=keys: next(it, _END))  # type: ignore[misc]
            if key is _END:
                break
            yield key


_END = object()


def used_memory(memory: Any) -> int:
    """Redis ``INFO memory`` ``used_memory``, in bytes; on a Redis Cluster, summed over
    its masters (the nodes that hold the data)."""
    return _guarded(lambda: sum(int(client.info("memory")["used_memory"])
                                for client in _masters(memory)))


def server_time(memory: Any) -> float:
    """The server's clock in seconds (a cluster: its first master's)."""
    sec, _ = _guarded(lambda: _masters(memory)[0].time())
    return float(sec)


def read_unchecked(memory: Any, *keys: str) -> list[Any]:
    """``GET`` of each key in one round trip, before (and without) the store's layout
    check: how a command opens data in the layout and grid cell the server records.
    (On a Redis Cluster: one ``GET`` per key, routed by the cluster client.)"""
    if not isinstance(memory, Memory):
        client = memory.client
        return _guarded(lambda: [client.get(k) for k in keys])
    plan = Plan(tuple(command("GET", k) for k in keys), every_reply)
    return RedisRunner(memory.client, None).run(plan)


def scan_master(runner: Any, node: Any, cursor: int, match: str | None,
                count: int) -> tuple[int, list[Any]]:
    """One ``SCAN cursor [MATCH match] COUNT count`` on a cluster's master ``node``."""
    try:
        nxt, keys = runner.node_client(node).scan(cursor, match=match, count=count)
    except redis.RedisError as exc:
        raise connection_failure(f"Redis Cluster node {node.name}", exc) from exc
    return int(nxt), list(keys)


def master_size(runner: Any, node: Any) -> int:
    """``DBSIZE`` of a cluster's master ``node``."""
    try:
        return int(runner.node_client(node).dbsize())
    except redis.RedisError as exc:
        raise connection_failure(f"Redis Cluster node {node.name}", exc) from exc
