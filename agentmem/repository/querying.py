"""Ad-hoc queries over actions on the server's Query Engine (``FT.AGGREGATE``).

The index is :func:`agentmem.plans.ftindex.action_index`, over the action hashes
themselves; a store creates (or migrates) it on first use, one round trip more.
"""

from __future__ import annotations

from typing import Any, TypeVar

from agentmem.errors import InvalidInput, Unsupported
from agentmem.model.records import Action
from agentmem.plans.ftindex import (
    MAX_RESULTS,
    IndexDef,
    IndexStatus,
    Scored,
    aggregate_call,
    aggregate_rows,
    check_window,
    count_call,
    ensure_plan,
    info_plan,
    is_missing_index,
    knn_call,
    knn_results,
    legacy_names,
    query_vector,
    search_total,
    vector_index,
)
from agentmem.plans.ftindex import action_index as _action_index
from agentmem.plans.ftquery import Condition, Field, SortKey, render, sort_key
from agentmem.plans.plan import Call, FollowUp, Plan
from agentmem.plans.runner import operation
from agentmem.repository.actioncore import ActionCore

T = TypeVar("T")


class ActionSearch(ActionCore):
    """Filtered and sorted queries over every short-term action, on the Query Engine."""

    @property
    def _ft_made(self) -> set[str]:
        """The indexes this store has seen or created (a set per repository)."""
        made: set[str] | None = self.__dict__.get("_ft_names")
        if made is None:
            made = self.__dict__["_ft_names"] = set()
        return made

    def _ft_index(self) -> str:
        if self.cluster:
            raise Unsupported("ad-hoc queries (the Query Engine) need one server; a Redis "
                              "Cluster's search module indexes each shard alone")
        return _action_index(self.layout).name

    def _ft_then(self, call: Call, parse: Any, index: IndexDef | None = None,
                 retry: bool = True) -> Plan[T]:
        """``call`` on ``index`` (default: the action index), preceded on a store's first
        use of it by creating it; an index dropped since (``FLUSHALL``,
        ``FT.DROPINDEX``) is created again."""
        index = index or _action_index(self.layout)

        def run(replies: list[Any]) -> T:
            reply = replies[0]
            if isinstance(reply, Exception) and is_missing_index(reply) and retry:
                self._ft_made.discard(index.name)
                raise FollowUp(self._ft_then(call, parse, index, retry=False))
            return parse(reply)  # type: ignore[no-any-return]

        query: Plan[T] = Plan((call,), run)
        if index.name in self._ft_made:
            return query

        def then(_created: bool) -> T:
            raise FollowUp(self._indexed(index.name, query))

        return ensure_plan(index, then, legacy_names(self.layout, index))

    def _indexed(self, name: str, then: Plan[T]) -> Plan[T]:
        """``FT.INFO`` until the server has indexed the hashes that existed when the
        index was created (a store's first use only), then ``then``."""

        info = info_plan(name)

        def check(replies: list[Any]) -> T:
            if info.parse(replies).indexing:
                raise FollowUp(self._indexed(name, then))
            self._ft_made.add(name)
            raise FollowUp(then)

        return Plan(info.calls, check)

    @operation
    def query_index(self, /) -> Plan[IndexStatus]:
        """Create (or migrate) the action index if needed and report its state
        (``FT.INFO``): documents, whether the server is still indexing existing hashes,
        failures. :class:`~agentmem.errors.Unsupported` without the search module."""
        return self._status(_action_index(self.layout))

    def _status(self, index: IndexDef) -> Plan[IndexStatus]:
        self._ft_index()

        def then(created: bool) -> IndexStatus:
            self._ft_made.add(index.name)
            raise FollowUp(info_plan(index.name, created))

        return ensure_plan(index, then, legacy_names(self.layout, index))

    @operation
    def vector_index(self, /, dim: int) -> Plan[IndexStatus]:
        """:meth:`query_index` for the KNN index of embeddings of length ``dim``."""
        return self._status(vector_index(self.layout, dim))

    @operation
    def similar(self, /, vector: Any, *where: Condition, k: int = 10) -> Plan[list[Scored]]:
        """The ``k`` short-term actions whose embedding is nearest (cosine) to
        ``vector`` among those matching ``where`` (server-side KNN), as
        ``(action, score)`` pairs, ``score = 1 - cosine distance``, best first; equal
        scores newest first. Only embeddings of the vector's length are candidates
        (one index per length, created on first use)."""
        q = query_vector(vector)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_RESULTS:
            raise InvalidInput(f"k must be an int in 0..{MAX_RESULTS}, got {k!r}")
        text = render(where)
        self._ft_index()
        if k == 0:
            return Plan((), lambda _: [])
        index = vector_index(self.layout, int(q.shape[0]))
        decode = self.spec.codec.decode
        return self._ft_then(knn_call(index.name, text, q, k),
                             lambda reply: knn_results(reply, decode), index)

    @operation
    def query(self, /, *where: Condition, sort_by: str | SortKey | Field | None = None,
              limit: int = 100, offset: int = 0) -> Plan[list[Action]]:
        """The short-term actions matching every condition of ``where``
        (``Q.reward > 0.5``, ``Q.action_type.isin(["move", "gather"])``,
        ``Q.step_number.between(100, 200)``, ``Q.details.matches("gold")``, combined
        with ``&``, ``|``, ``~``; none: every action), across agents and simulations.

        Ordered by ``sort_by`` (``"-reward"``: descending; actions without the field
        last), then newest first (step, then action id, descending); ``offset`` and
        ``limit`` select a window (``offset + limit <= 10000``). One round trip (two
        on a store's first query, which creates the index; see ``docs/search.md``).
        """
        text = render(where)
        key = None if sort_by is None else sort_key(sort_by)
        check_window(offset, limit)
        if limit == 0:
            return Plan((), lambda _: [])
        decode = self.spec.codec.decode
        id_field = self.spec.codec.wire("action_id")
        return self._ft_then(aggregate_call(self._ft_index(), text, key, offset, limit),
                             lambda reply: [decode(row)
                                            for row in aggregate_rows(reply, id_field)])

    @operation
    def query_count(self, /, *where: Condition) -> Plan[int]:
        """How many short-term actions match every condition of ``where``."""
        text = render(where)
        return self._ft_then(count_call(self._ft_index(), text), search_total)

