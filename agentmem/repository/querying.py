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
    is_zero_vector,
    knn_calls,
    knn_results,
    legacy_names,
    query_vector,
    rank,
    search_total,
    vector_index,
    zero_vectors_call,
)
from agentmem.plans.ftindex import action_index as _action_index
from agentmem.plans.ftquery import Condition, Field, SortKey, negated, render, sort_key
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

    def _ft_then(self, call: Call, parse: Any, index: IndexDef | None = None) -> Plan[T]:
        """``call`` on ``index`` (default: the action index), preceded on a store's first
        use of it by creating it; an index dropped since (``FLUSHALL``,
        ``FT.DROPINDEX``) is created again."""
        return self._ft_calls((call,), lambda replies: parse(replies[0]), index)

    def _ft_calls(self, calls: tuple[Call, ...], parse: Any, index: IndexDef | None = None,
                  retry: bool = True) -> Plan[T]:
        """:meth:`_ft_then` for several calls in one round trip; ``parse`` takes every
        reply."""
        index = index or _action_index(self.layout)

        def run(replies: list[Any]) -> T:
            if retry and any(isinstance(r, Exception) and is_missing_index(r)
                             for r in replies):
                self._ft_made.discard(index.name)
                raise FollowUp(self._ft_calls(calls, parse, index, retry=False))
            return parse(replies)  # type: ignore[no-any-return]

        query: Plan[T] = Plan(calls, run)
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
            info = info_plan(index.name, created)

            def known(replies: list[Any]) -> IndexStatus:
                status = info.parse(replies)
                # known (no more waits) only once the existing hashes are indexed: until
                # then the store's next query still waits for them (_indexed)
                if not status.indexing:
                    self._ft_made.add(index.name)
                return status

            raise FollowUp(Plan(info.calls, known))

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
        (one index per length, created on first use). A stored zero vector scores 0.
        A condition with a negation (``~c``, ``!=``) is :class:`Unsupported`: the
        RediSearch module loses the distance of some matches then (docs/search.md)."""
        q = query_vector(vector)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_RESULTS:
            raise InvalidInput(f"k must be an int in 0..{MAX_RESULTS}, got {k!r}")
        text = render(where)
        if negated(where):
            raise Unsupported(
                "similar() cannot take a condition with a negation (~c or !=): the "
                "RediSearch module drops the distance of some matches of a negated "
                "condition combined with a vector range, and the best matches would "
                "be missed. Name the values to keep (Q.field.isin([...])), or filter "
                "query()'s results and score them with agentmem.search.similarity")
        self._ft_index()
        if k == 0:
            return Plan((), lambda _: [])
        index = vector_index(self.layout, int(q.shape[0]))
        decode = self.spec.codec.decode

        def ranked(replies: list[Any]) -> list[Scored]:
            found = knn_results(replies[0], decode)
            zeros = search_total(replies[1]) - search_total(replies[0])
            if zeros <= 0 or (len(found) >= k and found[k - 1].score > 0):
                return found[:k]
            # stored zero vectors (score 0) rank above the negative scores: the newest
            # of them, read in pages
            raise FollowUp(self._zero_vectors(index.name, text, found, k,
                                              min(k, zeros), 0))

        return self._ft_calls(knn_calls(index.name, text, q, k), ranked, index)

    def _zero_vectors(self, name: str, text: str, found: list[Scored], k: int, need: int,
                      offset: int) -> Plan[list[Scored]]:
        """``found`` with the ``need`` newest stored zero vectors matching ``text``
        (score 0), best ``k`` first; the actions with an embedding are read newest
        first, pages of at least 1000 (growing), until ``need`` are found."""
        size = max(1000, offset, k)
        decode = self.spec.codec.decode
        id_field = self.spec.codec.wire("action_id")

        def page(replies: list[Any]) -> list[Scored]:
            rows = aggregate_rows(replies[0], id_field)
            zeros = [Scored(a, 0.0) for a in map(decode, rows) if is_zero_vector(a.embedding)]
            more = [*found, *zeros]
            left = need - len(zeros)
            if left > 0 and rows:  # an empty page: no more actions
                raise FollowUp(self._zero_vectors(name, text, more, k, left, offset + size))
            return rank(more)[:k]

        return Plan((zero_vectors_call(name, text, offset, size),), page)

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

