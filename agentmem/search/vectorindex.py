"""Top-k through the server's vector index (the Redis Query Engine: ``FT.CREATE`` /
``FT.SEARCH`` KNN), for servers that have the search module.

The index and the query are plans of the action repository
(:meth:`~agentmem.ActionRepository.similar`, :meth:`~agentmem.ActionRepository.vector_index`);
this module gives them the interface of :class:`~agentmem.search.similarity.SimilarityIndex`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agentmem.backends.redis import Memory
from agentmem.errors import AgentMemError, BackendError
from agentmem.plans.ftindex import IndexStatus, unsupported
from agentmem.plans.ftindex import vector_index as vector_index_def
from agentmem.plans.ftquery import Condition, Q
from agentmem.plans.plan import Plan, command
from agentmem.search.vectors import Match

__all__ = ["ServerVectorIndex", "server_has_vector_index", "wait_indexed"]


def server_has_vector_index(memory: Memory) -> bool:
    """Whether the server has the search module (``FT._LIST`` answers)."""
    try:
        memory.runner.run(Plan((command("FT._LIST"),), _ok))
    except AgentMemError:
        return False
    return True


def _ok(replies: list[Any]) -> None:
    if isinstance(replies[0], Exception):
        raise replies[0]


def wait_indexed(status: Any, timeout: float = 30.0, interval: float = 0.02) -> IndexStatus:
    """Call ``status()`` (e.g. ``mem.actions.query_index``) until the server has indexed
    the hashes that existed when the index was created; :class:`BackendError` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        s: IndexStatus = status()
        if not s.indexing:
            return s
        if time.monotonic() > deadline:
            raise BackendError(f"index {s.name} still indexing after {timeout} s "
                               f"({s.percent_indexed:.0%})")
        time.sleep(interval)


class ServerVectorIndex:
    """Top-k through the server's vector index (``FT.SEARCH`` KNN).

    One index per store layout and embedding length (``agentmem:idx:vectors:L1:<d>:<sha8>``),
    created on first use over the agents' action hashes (no copy), with the vector
    field ``embedding`` (FLAT, FLOAT32, COSINE) and every field of
    :data:`~agentmem.Q`. The server keeps it current on every write, transition and
    expiry, so nothing is cached here. :class:`~agentmem.errors.Unsupported` when the
    server has no search module.
    """

    def __init__(self, memory: Memory) -> None:
        if not server_has_vector_index(memory):
            raise unsupported()
        self.memory = memory
        self.layout = memory.actions.layout

    def index_name(self, dim: int) -> str:
        return vector_index_def(self.layout, dim).name

    def ensure(self, dim: int, *, wait: bool = True, timeout: float = 30.0) -> str:
        """Create the index of length ``dim`` if needed (and, with ``wait``, wait until
        the hashes that existed before are indexed); its name."""
        if wait:
            return wait_indexed(lambda: self.memory.actions.vector_index(dim), timeout).name
        return self.memory.actions.vector_index(dim).name

    def search(self, agent_id: str, q: np.ndarray, k: int, types: list[str] | None,
               start: int | None, end: int | None) -> list[Match]:
        """The ``k`` actions of ``agent_id`` nearest ``q``, filtered as
        :meth:`SimilarityIndex.search <agentmem.search.similarity.SimilarityIndex.search>`
        filters, best first."""
        self.layout.key("timeline", agent_id=agent_id)  # checks the id
        where: list[Condition] = [Q.agent_id == agent_id]
        if types is not None:
            where.append(Q.action_type.isin(types))
        if start is not None or end is not None:
            where.append(Q.step_number.between(start, end))
        found = self.memory.actions.similar(q, *where, k=k)
        return [Match(s.action, s.score) for s in found]
