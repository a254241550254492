"""Top-k cosine similarity over an agent's stored embeddings (see ``docs/search.md``).

:class:`SimilarityIndex` keeps, per agent, the matrix of the agent's short-term
embeddings (normalised once) between queries, and answers ``search`` with one
matrix-vector product and ``argpartition``. The cache is kept exact without any
change to the write path, by the server's own change notifications:

* before it reads an agent, the index opens a connection of its own on which
  the server *tracks* every key of the agent's short-term layout
  (``CLIENT TRACKING ON BCAST PREFIX agent:<id>:action:``, redirected to the same
  connection, subscribed to ``__redis__:invalidate``). Every write, transition,
  eviction, expiry, repair or flush that modifies one of those keys makes the
  server send the key's name on that connection;
* each query first sends ``PING`` on that connection and reads up to its reply:
  the server writes a connection's output in order, so every change made before
  the ``PING`` was processed has been read. That is one round trip of a few
  bytes. Changed action hashes are re-read by id; a changed timeline makes the
  index re-read the timeline's ids (not the vectors) and fetch only new ones; a
  flush or a lost connection drops the agent's cache.

When the server has the Redis Query Engine (``FT.SEARCH``), ``server_index=True``
(or ``None``, the default, when the server offers it) answers from a vector
index of the server instead (:class:`ServerVectorIndex`).

Blocking stores only; an index object is not thread-safe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentmem.backends.redis import Memory
from agentmem.backends.tracking import ChangeFeed
from agentmem.errors import BackendError, DecodeError, InvalidInput
from agentmem.lua.search import TIMELINE, VECTORS
from agentmem.plans.keyspace import check_action_type
from agentmem.plans.plan import Plan, command, every_reply, script_call, single
from agentmem.search.vectorindex import ServerVectorIndex, server_has_vector_index
from agentmem.search.vectors import (
    Match,
    as_query,
    best,
    check_steps,
    normalised,
    text,
    top_k,
    unit_query,
)


@dataclass
class CacheStats:
    """What the cache of a :class:`SimilarityIndex` did (for tests and tuning)."""

    loads: int = 0
    """Full reads of an agent (first query, flush, lost connection)."""
    timeline_reads: int = 0
    """Re-reads of a timeline's ids after a change notification."""
    vectors_read: int = 0
    """Embeddings read from the server, in total."""
    validations: int = 0
    """``PING`` round trips that validated a cache."""


# -- the per-agent cache ---------------------------------------------------------------------


@dataclass
class _Agent:
    """The cached short-term vectors of one agent, rows in timeline order (step, id)."""

    tracker: ChangeFeed
    members: dict[bytes, bytes] = field(default_factory=dict)
    """Every id of the timeline with its step (also those without a hash or embedding)."""
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="S1"))
    steps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    types: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    type_names: dict[bytes, int] = field(default_factory=dict)
    matrix: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))
    mixed: dict[int, int] | None = None
    """Actions per embedding length when they differ (search refuses such an agent)."""
    loaded: bool = False


Row = tuple[bytes, bytes, bytes]
"""(action id, action type, embedding bytes) of one action read from the server."""


class SimilarityIndex:
    """Top-k cosine search over agents' short-term embeddings, with an exact cache.

    ``SimilarityIndex(memory)`` on a blocking :class:`~agentmem.Memory`.
    ``batch_size`` ids are read per script call (all calls of a read in one round
    trip); ``max_agents`` agents are cached at once (each holds one tracking
    connection; the least recently searched is dropped). ``server_index``: ``True``
    uses the server's vector index (``FT.SEARCH``; :class:`Unsupported` without
    one), ``False`` (the default) never does, ``None`` uses it when the server
    offers it.
    """

    def __init__(self, memory: Memory, *, batch_size: int = 5000, max_agents: int = 16,
                 server_index: bool | None = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(max_agents, bool) or not isinstance(max_agents, int) or max_agents < 1:
            raise InvalidInput(f"max_agents must be a positive int, got {max_agents!r}")
        self.memory = memory
        self.layout = memory.actions.layout
        self.batch_size = batch_size
        self.max_agents = max_agents
        self.stats = CacheStats()
        self._agents: OrderedDict[str, _Agent] = OrderedDict()
        self.server: ServerVectorIndex | None = None
        if server_index is None and server_has_vector_index(memory):
            server_index = True
        if server_index:
            self.server = ServerVectorIndex(memory)

    # -- public --------------------------------------------------------------------------

    def search(self, agent_id: str, query: Any, k: int = 10, *,
               action_type: str | Sequence[str] | None = None, start: int | None = None,
               end: int | None = None) -> list[Match]:
        """The ``k`` short-term actions of ``agent_id`` whose embeddings are most similar
        (cosine) to ``query``, best first; ties go to the newest (step, then id).

        ``action_type`` (one type or several) and ``start <= step <= end`` filter
        the candidates. Actions without an embedding are not candidates. The
        actions are read fresh (one round trip) after the cache is validated (one
        ``PING``). :class:`InvalidInput` when the query's length differs from the
        stored embeddings'.
        """
        q = as_query(query)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InvalidInput(f"k must be a non-negative int, got {k!r}")
        types = _types(action_type)
        check_steps(start, end)
        self.layout.key("timeline", agent_id=agent_id)  # checks the id
        if self.server is not None:
            return self.server.search(agent_id, q, k, types, start, end)
        for _ in range(8):
            entry = self._refresh(agent_id)
            rows, scores = self._rank(entry, q, k, types, start, end)
            if not rows.size:
                return []
            ids = [text(i) for i in entry.ids[rows]]
            actions = self.memory.actions.get_many(ids, agent_id=agent_id)
            gone = {i.encode() for i, a in zip(ids, actions, strict=True) if a is None}
            if not gone:
                return [Match(a, float(s)) for a, s in zip(actions, scores, strict=True)
                        if a is not None]
            # hashes expired or moved after the validation: drop them and rank again
            self._update(entry, agent_id, gone, False)
        raise BackendError(f"the actions of {agent_id!r} kept changing during the search")

    def invalidate(self, agent_id: str | None = None) -> None:
        """Drop the cache of one agent (or of all): the next search reads it again."""
        for a in ([agent_id] if agent_id is not None else list(self._agents)):
            entry = self._agents.pop(a, None)
            if entry is not None:
                entry.tracker.close()

    def close(self) -> None:
        """Close the tracking connections and drop every cache."""
        self.invalidate()

    def __enter__(self) -> SimilarityIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cached_agents(self) -> list[str]:
        """The agents whose vectors are cached, least recently searched first."""
        return list(self._agents)

    # -- ranking -------------------------------------------------------------------------

    def _rank(self, entry: _Agent, q: np.ndarray, k: int, types: list[str] | None,
              start: int | None, end: int | None) -> tuple[np.ndarray, np.ndarray]:
        if entry.mixed is not None:
            raise InvalidInput(
                "the agent's embeddings have different lengths "
                f"({', '.join(f'{d}: {c} actions' for d, c in sorted(entry.mixed.items()))}); "
                "cosine similarity needs one length")
        n = entry.ids.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        dim = entry.matrix.shape[1]
        if q.shape[0] != dim:
            raise InvalidInput(f"query has {q.shape[0]} dimensions; the agent's embeddings "
                               f"have {dim}")
        eligible: np.ndarray | None = None
        if types is not None:
            codes = [entry.type_names[t.encode()] for t in types
                     if t.encode() in entry.type_names]
            eligible = np.isin(entry.types, np.asarray(codes, dtype=np.int32))
        if start is not None or end is not None:
            lo = -np.inf if start is None else start
            hi = np.inf if end is None else end
            window = (entry.steps >= lo) & (entry.steps <= hi)
            eligible = window if eligible is None else eligible & window
        return best(entry.matrix, unit_query(q), k, eligible)

    # -- the cache -------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        entry = self._agents.get(agent_id)
        if entry is not None:
            self._agents.move_to_end(agent_id)
            return entry
        prefix, _ = self.layout.record_key_parts("action", agent_id=agent_id)
        entry = _Agent(tracker=ChangeFeed(self.memory, prefix))
        self._agents[agent_id] = entry
        while len(self._agents) > self.max_agents:
            _, old = self._agents.popitem(last=False)
            old.tracker.close()
        return entry

    def _keys(self, agent_id: str) -> tuple[str, str, str]:
        prefix, suffix = self.layout.record_key_parts("action", agent_id=agent_id)
        return prefix, suffix, self.layout.key("timeline", agent_id=agent_id)

    def _refresh(self, agent_id: str) -> _Agent:
        """The agent's cache, brought up to date with the server (exact)."""
        entry = self._agent(agent_id)
        try:
            changed = entry.tracker.changes()
        except (OSError, BackendError):
            self.invalidate(agent_id)
            entry = self._agent(agent_id)
            changed = None
        self.stats.validations += 1
        if changed is None or not entry.loaded:
            entry = _Agent(tracker=entry.tracker)
            self._agents[agent_id] = entry
            self._reload(entry, agent_id)
            return entry
        if not changed:
            return entry
        prefix, suffix, timeline = self._keys(agent_id)
        tkey, pre, suf = timeline.encode(), prefix.encode(), suffix.encode()
        ids: set[bytes] = set()
        timeline_changed = False
        for key in changed:
            if key == tkey:
                timeline_changed = True
            elif key.startswith(pre) and key.endswith(suf) and len(key) > len(pre) + len(suf):
                middle = key[len(pre):len(key) - len(suf)]
                if b":" not in middle:  # an action hash (index keys have more segments)
                    ids.add(middle)
        if timeline_changed or ids:
            self._update(entry, agent_id, ids, timeline_changed)
        return entry

    def _reload(self, entry: _Agent, agent_id: str) -> None:
        self.stats.loads += 1
        prefix, suffix, timeline = self._keys(agent_id)
        entry.members = self._members(timeline)
        self._rebuild(entry, None, self._vectors(prefix, suffix, list(entry.members)))
        entry.loaded = entry.mixed is None

    def _update(self, entry: _Agent, agent_id: str, ids: set[bytes],
                timeline_changed: bool) -> None:
        """Apply changes: ``ids`` whose hash changed, and the timeline when it changed."""
        prefix, suffix, timeline = self._keys(agent_id)
        old = entry.members
        if timeline_changed:
            self.stats.timeline_reads += 1
            new = self._members(timeline)
            added = {i for i, _ in new.items() - old.items()}  # new ids, or a new step
            removed = old.keys() - new.keys()
        else:
            new, added, removed = old, set(), set()
        refetch = (ids & new.keys()) | added
        drop = refetch | removed | ids
        keep = None
        if drop and entry.ids.size:
            keep = ~np.isin(entry.ids, np.array(sorted(drop)))
        entry.members = new
        self._rebuild(entry, keep, self._vectors(prefix, suffix, sorted(refetch)))

    def _members(self, timeline: str) -> dict[bytes, bytes]:
        """Every id of the timeline with its score (as the server writes it)."""
        text = self.memory.runner.run(single(script_call(TIMELINE, [timeline]), lambda r: r))
        parts = text.split(b"\n") if text else []
        if len(parts) % 2:  # an id with a newline (not written by agentmem): ask per member
            raw = self.memory.runner.run(single(
                command("ZRANGE", timeline, 0, -1, "WITHSCORES"), lambda r: r))
            if raw and isinstance(raw[0], (list, tuple)):
                return {bytes(m): repr(float(s)).encode() for m, s in raw}
            return {m: repr(float(s)).encode() for m, s in zip(raw[::2], raw[1::2],
                                                               strict=True)}
        return dict(zip(parts[::2], parts[1::2], strict=True))

    def _vectors(self, prefix: str, suffix: str, ids: list[bytes]) -> list[Row]:
        """(id, type, embedding) of the ids whose hash has an embedding; one round trip
        for all batches."""
        if not ids:
            return []
        size = self.batch_size
        wire = self.memory.actions.spec.codec.wire
        calls = [script_call(VECTORS, [prefix, suffix, wire("action_type"), wire("embedding"),
                                       *ids[i:i + size]])
                 for i in range(0, len(ids), size)]

        replies = self.memory.runner.run(Plan(calls, every_reply))
        out: list[Row] = []
        for b, reply in enumerate(replies):
            types, embs = reply[::2], reply[1::2]
            for aid, typ, emb in zip(ids[b * size:(b + 1) * size], types, embs, strict=True):
                if typ is not None and emb is not None:
                    out.append((aid, typ, emb))
        self.stats.vectors_read += len(out)
        return out

    def _rebuild(self, entry: _Agent, keep: np.ndarray | None, fetched: list[Row]) -> None:
        """Drop the rows not in ``keep``, add ``fetched``, keep rows in (step, id) order."""
        if keep is not None:
            entry.ids, entry.steps = entry.ids[keep], entry.steps[keep]
            entry.types, entry.matrix = entry.types[keep], entry.matrix[keep]
        if not fetched:
            return
        lengths: dict[int, int] = {}
        for _, _, emb in fetched:
            if len(emb) % 4:
                raise DecodeError(f"an embedding of {len(emb)} bytes is not float32 data")
            lengths[len(emb) // 4] = lengths.get(len(emb) // 4, 0) + 1
        if entry.ids.size:
            d = entry.matrix.shape[1]
            lengths[d] = lengths.get(d, 0) + entry.ids.shape[0]
        if len(lengths) > 1:
            # differing lengths: remembered for the error; read again on the next search
            entry.mixed, entry.loaded = lengths, False
            return
        members, names = entry.members, entry.type_names
        new_ids = np.array([f[0] for f in fetched])
        new_steps = np.array([float(members[f[0]]) for f in fetched], dtype=np.float64)
        new_types = np.array([names.setdefault(f[1], len(names)) for f in fetched],
                             dtype=np.int32)
        mat = normalised(np.frombuffer(b"".join(f[2] for f in fetched), dtype="<f4")
                         .reshape(len(fetched), -1))
        if entry.ids.size:
            ids = np.concatenate([entry.ids, new_ids])
            steps = np.concatenate([entry.steps, new_steps])
            types = np.concatenate([entry.types, new_types])
            matrix = np.concatenate([entry.matrix, mat])
        else:
            ids, steps, types, matrix = new_ids, new_steps, new_types, mat
        order = np.lexsort((ids, steps))
        if np.any(order[1:] < order[:-1]):
            ids, steps, types, matrix = ids[order], steps[order], types[order], matrix[order]
        entry.ids, entry.steps, entry.types = ids, steps, types
        entry.matrix = np.ascontiguousarray(matrix)


def _types(action_type: str | Sequence[str] | None) -> list[str] | None:
    if action_type is None:
        return None
    types = [action_type] if isinstance(action_type, str) else list(action_type)
    for t in types:
        check_action_type(t)
    return types


def brute_force(memory: Memory, agent_id: str, query: Any, k: int = 10, *,
                action_type: str | Sequence[str] | None = None, start: int | None = None,
                end: int | None = None) -> list[Match]:
    """The same answer as :meth:`SimilarityIndex.search`, computed the slow way.

    Reads every action of the agent's timeline (``timeline``: one round trip, whole
    hashes) and scores each in numpy. No cache; the reference the tests and the
    benchmark compare with.
    """
    q = as_query(query)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInput(f"k must be a non-negative int, got {k!r}")
    types = _types(action_type)
    check_steps(start, end)
    # the lengths are checked over every embedding of the agent, as the index does
    every = [a for a in memory.actions.timeline(agent_id) if a.embedding is not None]
    if not every:
        return []
    dims: dict[int, int] = {}
    for a in every:
        if a.embedding is not None:
            dims[a.embedding.shape[0]] = dims.get(a.embedding.shape[0], 0) + 1
    if len(dims) > 1:
        raise InvalidInput(
            "the agent's embeddings have different lengths "
            f"({', '.join(f'{d}: {c} actions' for d, c in sorted(dims.items()))}); "
            "cosine similarity needs one length")
    if q.shape[0] not in dims:
        raise InvalidInput(f"query has {q.shape[0]} dimensions; the agent's embeddings "
                           f"have {next(iter(dims))}")
    lo = -np.inf if start is None else start
    hi = np.inf if end is None else end
    actions = [a for a in every if (types is None or a.action_type in types)
               and lo <= a.step_number <= hi]
    if not actions or k == 0:
        return []
    mat = normalised(np.stack([a.embedding for a in actions if a.embedding is not None]))
    rows, scores = best(mat, unit_query(q), k)
    return [Match(actions[r], float(s)) for r, s in zip(rows, scores, strict=True)]


__all__ = ["CacheStats", "Match", "ServerVectorIndex", "SimilarityIndex", "as_query",
           "brute_force", "normalised", "server_has_vector_index", "top_k"]

