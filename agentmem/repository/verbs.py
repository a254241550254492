"""The ORM verbs of every repository: ``update``, ``delete``, ``exists`` and ``page``.

Written once as plans, like the rest of :mod:`agentmem.repository.base` (whose
:class:`~agentmem.repository.base.RecordOps` inherits them): each is one round trip,
and ``update`` and ``delete`` are one script call each, atomic on the server (see
:mod:`agentmem.plans.change` and :mod:`agentmem.plans.paging`).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agentmem.errors import InvalidId, InvalidInput, NotFound, SchemaError, Unsupported
from agentmem.lua.scripts import DELETE, UPDATE
from agentmem.model.schema import ID, RecordSpec, SetIndex, SortedIndex, Template
from agentmem.plans.change import (
    fixed_args,
    new_entries,
    record_key,
    section,
    unindex_body,
)
from agentmem.plans.paging import Page, PageSource, page_plan
from agentmem.plans.plan import Arg, Plan, command, score_arg, script_call, single
from agentmem.plans.runner import operation
from agentmem.plans.write import WritePlanner

M = TypeVar("M", bound=BaseModel)


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def parse_deleted(raw: Any) -> bool:
    """The delete script's reply: True when a hash was deleted."""
    if isinstance(raw, list):
        raise InvalidInput(f"key {_text(raw[1])!r} holds another type than its index needs; "
                           "nothing was deleted")
    return int(raw) > 0


class RecordVerbs(Generic[M]):
    """``update``, ``delete``, ``exists`` and ``page`` over one declaration."""

    _remote_follows = False
    """Whether the caller writes a record's entries in other slots itself (a cluster)."""

    runner: Any
    spec: RecordSpec[M]
    writer: WritePlanner[M]
    cluster: bool

    def check(self, record: M) -> None:
        """Extra validation before encoding; subclasses add model-specific rules."""

    def _key_of(self, id: str | int, scope: dict[str, Any]) -> tuple[str, str]:
        """The record key of ``id`` in ``scope``, and the id as text (checked)."""
        rid = Template.parse("{id}").render({"id": id})
        if rid in self.spec.reserved_ids:
            raise InvalidId(f"{self.spec.id} {rid!r} is reserved: it names an index key")
        prefix, suffix = self.spec.key.around(self.spec.id, scope)
        return prefix + rid + suffix, rid

    def _one_slot(self, verb: str) -> None:
        if self.cluster and self.writer.remote:
            raise Unsupported(
                f"{verb} on a Redis Cluster needs every index of {self.spec.model.__name__} in "
                "its record's slot; this declaration has indices in other slots (on a cluster, "
                "the actions' simulation-level indices): use one server (docs/cluster.md)")

    def _unindex(self) -> list[Arg]:
        body: list[Arg] | None = self.__dict__.get("_unindex_body")
        if body is None:
            body = self.__dict__["_unindex_body"] = unindex_body(self.spec)
        return body

    # -- exists, delete ---------------------------------------------------------

    @operation
    def exists(self, /, id: str | int, **scope: str | int) -> Plan[bool]:
        """Whether the record with ``id`` is stored (its hash exists); one ``EXISTS``."""
        key, _ = self._key_of(id, scope)
        return single(command("EXISTS", key), lambda n: int(n) > 0)

    @operation
    def delete(self, /, id: str | int, **scope: str | int) -> Plan[bool]:
        """Delete the record with ``id`` and every index entry it has, atomically, in one
        script call: sorted sets, sets and lists lose its id, counters are decremented
        (a count at 0 is removed), an index of field values loses a value no record has
        any more. True when it was stored, False when there was nothing to delete."""
        self._one_slot("delete")
        key, rid = self._key_of(id, scope)
        argv = [1, *section(self._unindex(), key, rid)]
        return single(script_call(DELETE, argv, route=key), parse_deleted)

    # -- update -----------------------------------------------------------------

    def _update_plan(self, record: M) -> Plan[M]:
        model = self.spec.model
        if not isinstance(record, model):
            raise InvalidInput(f"expected a {model.__name__}, got {type(record).__name__}")
        self._one_slot("update")
        self.check(record)
        prep = self.writer.prepare(record)
        if prep.mode != "f":
            raise InvalidInput(f"update needs the record's {self.spec.id}: the record to replace")
        rid, vals = prep.base, prep.vals
        key = record_key(self.writer, vals, rid)
        hash_args, groups = new_entries(self.writer, vals, rid,
                                        local_only=self._remote_follows)
        argv: list[Arg] = [*section(self._unindex(), key, rid), self.writer.id_field,
            self.writer.stamp_field, *fixed_args(self.writer, vals),
            len(hash_args), *hash_args, *groups]
        codec = self.spec.codec
        stamp = codec.write_time_field

        def parse(raw: Any) -> M:
            tag = _text(raw[0])
            if tag == "\0MISSING":
                raise NotFound(f"{model.__name__} {rid!r} is not stored ({key}); nothing updated")
            if tag == "\0FIXED":
                field = codec.storage_of(_text(raw[1])) or _text(raw[1])  # its own name
                raise InvalidInput(
                    f"{field} is part of the record's key or id and cannot change "
                    f"(stored: {_text(raw[2])!r}); nothing updated")
            if tag == "\0WRONGTYPE":
                raise InvalidInput(f"key {_text(raw[1])!r} holds another type than its index "
                                   "needs; nothing updated")
            if stamp is None or not raw[1]:
                return codec.with_values(record, {})
            return codec.with_values(record, {stamp.name: int(raw[1])})

        return single(script_call(UPDATE, argv, route=key), parse)

    @operation
    def update(self, /, record: M) -> Plan[M]:
        """Replace the stored record of ``record``'s id with ``record``, atomically, in one
        script call: index entries of the old values are removed and those of the new
        added (a list entry that stays keeps its place); the write time and the remaining
        TTL are kept. A record that is not stored raises
        :class:`~agentmem.errors.NotFound`; a change of a field of the key or of the id
        (see :func:`agentmem.plans.change.fixed_fields`) raises
        :class:`~agentmem.errors.InvalidInput`. Returns the record as stored."""
        return self._update_plan(record)

    # -- page -------------------------------------------------------------------

    def _page_index(self, name: str, scope: dict[str, Any]) -> tuple[str, Any]:
        ix = self.spec.index(name)
        if getattr(ix, "member", ID) != ID:
            raise SchemaError(f"index {name!r} holds field values, not record ids")
        return Template.parse(ix.key).render(scope), ix

    def _page_source(self, query: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> tuple[PageSource, Any]:
        """What ``page(query, ...)`` walks, and how its hashes decode."""
        decode = self.spec.codec.decode
        if query == "range":
            return self._range_source(*args, **kwargs), decode
        if query == "members":
            return self._members_source(*args, **kwargs), decode
        raise InvalidInput(f"page: unknown query {query!r} (range, members)")

    def _range_source(self, index: str, *, min: float | None = None, max: float | None = None,
                      newest_first: bool = False, **scope: str | int) -> PageSource:
        key, ix = self._page_index(index, scope)
        if not isinstance(ix, SortedIndex):
            raise SchemaError(f"index {index!r} is not a SortedIndex")
        prefix, suffix = self.spec.key.around(self.spec.id, scope)
        return PageSource("z", key, prefix, suffix, lo=score_arg(min, "-inf"),
                          hi=score_arg(max, "+inf"), newest_first=newest_first)

    def _members_source(self, index: str, *, order_by: str | None = None,
                        newest_first: bool = True, **scope: str | int) -> PageSource:
        key, ix = self._page_index(index, scope)
        if not isinstance(ix, SetIndex):
            raise SchemaError(f"index {index!r} is not a SetIndex")
        prefix, suffix = self.spec.key.around(self.spec.id, scope)
        if order_by is None:
            return PageSource("i", key, prefix, suffix)
        okey, oix = self._page_index(order_by, scope)
        if not isinstance(oix, SortedIndex):
            raise SchemaError(f"index {order_by!r} is not a SortedIndex")
        return PageSource("s", key, prefix, suffix, order_key=okey, newest_first=newest_first)

    @operation
    def page(self, /, query: str, *args: Any, cursor: str | None = None, size: int = 100,
             **kwargs: Any) -> Plan[Page[Any]]:
        """One page of a listing query: ``page("range", "by_step", agent_id="a1")`` is
        ``range("by_step", agent_id="a1")`` in pages of ``size`` records, each one round
        trip whose work is bounded by ``size``, not by the index. ``cursor`` is the
        :class:`~agentmem.plans.paging.Page`'s ``cursor`` of the previous page (``None``
        for the first); it is ``None`` on the last page. Queries: ``range`` and
        ``members`` (with ``order_by``: walked in that order; without it: by id), and on
        actions every listing query (docs/queries.md)."""
        src, decode = self._page_source(query, args, kwargs)
        return page_plan(src, cursor, size, decode)
