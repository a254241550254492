"""Routing a plan's calls on a Redis Cluster: which key's slot a call runs on, the
command sent for it, and refused replies as agentmem's errors (used by
:mod:`agentmem.backends.cluster`).

May import: ``agentmem.errors``, ``agentmem.plans``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentmem.errors import BackendError, ConfigError
from agentmem.plans.plan import Call

__all__ = ["mapped", "name_of", "route_of", "wire"]


def name_of(args: Sequence[Any]) -> str:
    name = args[0]
    return name.decode() if isinstance(name, bytes) else str(name)


def route_of(call: Call) -> str:
    """The key whose slot a call runs on: ``call.route``, else the command's first key
    (a script's ``KEYS[1]``, or its first argument when it declares none)."""
    if call.route is not None:
        return call.route
    args = call.args
    if len(args) < 2:
        raise ConfigError(f"cannot route {name_of(args)} on a Redis Cluster: it names no key")
    if name_of(args).upper() in ("EVALSHA", "EVAL"):
        if len(args) < 4:
            raise ConfigError("cannot route a script without arguments on a Redis Cluster")
        return str(args[3])
    first = args[1]
    return first.decode() if isinstance(first, bytes) else str(first)


def wire(call: Call, route: str) -> tuple[Any, ...]:
    """The command sent: a script that declares no key gets its routing key as ``KEYS[1]``
    (the scripts read only ``ARGV``), so the node checks the slot."""
    args = call.args
    if name_of(args).upper() in ("EVALSHA", "EVAL") and int(args[2]) == 0:
        return (args[0], args[1], 1, route, *args[3:])
    return args


def mapped(replies: list[Any]) -> list[Any]:
    """Replies with redis-py errors turned into agentmem errors (not raised)."""
    out = []
    for r in replies:
        if isinstance(r, Exception):
            err = BackendError(f"Redis refused a command: {r}")
            err.__cause__ = r
            r = err
        out.append(r)
    return out
