"""Top-k through the server's vector index (the Redis Query Engine: ``FT.CREATE`` /
``FT.SEARCH`` KNN), for servers that have the search module."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from agentmem.backends.redis import Memory
from agentmem.errors import BackendError, InvalidInput
from agentmem.plans.plan import Plan, command
from agentmem.search.vectors import Match, neg_bytes, text

__all__ = ["ServerVectorIndex", "server_has_vector_index"]


def _execute(memory: Memory, *args: Any) -> Any:
    """One command through the store's runner (the one road to Redis); an error
    reply raises."""
    reply = memory.runner.run(Plan((command(*args),), lambda replies: replies[0]))
    if isinstance(reply, Exception):
        raise reply
    return reply


def server_has_vector_index(memory: Memory) -> bool:
    """Whether the server answers ``FT.SEARCH`` (``COMMAND INFO FT.SEARCH``)."""
    try:
        reply = _execute(memory, "COMMAND", "INFO", "FT.SEARCH")
    except Exception:
        return False
    return _command_info_found(reply)


def _command_info_found(reply: Any) -> bool:
    if isinstance(reply, dict):
        return any(v for v in reply.values())
    if isinstance(reply, (list, tuple)):
        return any(r for r in reply)
    return bool(reply)


_TAG_SPECIAL = set(",.<>{}[]\"':;!@#$%^&*()-+=~|/\\ ")


def _tag(value: str) -> str:
    return "".join("\\" + c if c in _TAG_SPECIAL else c for c in value)


class ServerVectorIndex:
    """Top-k through the server's vector index (``FT.CREATE`` / ``FT.SEARCH``, KNN).

    One index per store layout and embedding length, created on first use over
    the agents' action hashes (``ON HASH PREFIX``; vector field ``embedding``,
    FLOAT32, COSINE; tags ``agent_id`` and ``action_type``; numeric
    ``step_number``). The server keeps it current on every write, transition and
    expiry, so nothing is cached here. Results are read fresh and ordered as
    :meth:`SimilarityIndex.search` orders them.
    """

    def __init__(self, memory: Memory) -> None:
        if not server_has_vector_index(memory):
            raise BackendError("the server has no vector index (FT.SEARCH is unknown)")
        self.memory = memory
        self.layout = memory.actions.layout
        self._ready: set[int] = set()

    def index_name(self, dim: int) -> str:
        pattern = self.layout.patterns["action"]
        tag = hashlib.sha1(pattern.encode()).hexdigest()[:8]
        return f"agentmem:vectors:{tag}:{dim}"

    def _prefix(self) -> str:
        t = self.layout.template("action")
        out = ""
        for kind, value in t.parts:
            if kind != "L":
                break
            out += value
        return out

    def ensure(self, dim: int) -> str:
        name = self.index_name(dim)
        if dim in self._ready:
            return name
        try:
            _execute(
                self.memory, "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, self._prefix(), "SCHEMA",
                "embedding", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", dim,
                "DISTANCE_METRIC", "COSINE", "agent_id", "TAG", "action_type", "TAG",
                "step_number", "NUMERIC")
        except Exception as exc:
            if "already exists" not in str(exc).lower():
                raise BackendError(f"FT.CREATE {name} failed: {exc}") from exc
        self._ready.add(dim)
        return name

    def search(self, agent_id: str, q: np.ndarray, k: int, types: list[str] | None,
               start: int | None, end: int | None) -> list[Match]:
        if k == 0:
            return []
        name = self.ensure(q.shape[0])
        self.layout.key("timeline", agent_id=agent_id)  # checks the id
        flt = [f"@agent_id:{{{_tag(agent_id)}}}"]
        if types is not None:
            flt.append("@action_type:{" + " | ".join(_tag(t) for t in types) + "}")
        if start is not None or end is not None:
            flt.append(f"@step_number:[{'-inf' if start is None else start} "
                       f"{'+inf' if end is None else end}]")
        query = f"({' '.join(flt)})=>[KNN {k} @embedding $vec AS dist]"
        try:
            raw = _execute(
                self.memory, "FT.SEARCH", name, query, "PARAMS", 2, "vec",
                q.astype("<f4").tobytes(),
                "SORTBY", "dist", "RETURN", 1, "dist", "LIMIT", 0, k, "DIALECT", 2)
        except Exception as exc:
            if "dim" in str(exc).lower() or "size" in str(exc).lower():
                raise InvalidInput(f"query length {q.shape[0]} does not match the index: "
                                   f"{exc}") from exc
            raise BackendError(f"FT.SEARCH failed: {exc}") from exc
        prefix, suffix = self.layout.record_key_parts("action", agent_id=agent_id)
        found: list[tuple[str, float]] = []
        for i in range(1, len(raw), 2):
            key, fields = text(raw[i]), raw[i + 1]
            dist = dict(zip(fields[::2], fields[1::2], strict=True)).get(b"dist", b"1")
            aid = key[len(prefix):len(key) - len(suffix)] if suffix else key[len(prefix):]
            found.append((aid, 1.0 - float(dist)))
        actions = self.memory.actions.get_many([a for a, _ in found], agent_id=agent_id)
        out = [Match(a, s) for a, (_, s) in zip(actions, found, strict=True) if a is not None]
        out.sort(key=lambda m: (-m.score, -m.action.step_number, neg_bytes(m.action.action_id)))
        return out[:k]
