"""The declarative API: a pydantic model plus its key pattern, TTL and indices.

    SNAPSHOTS = declare(
        Snapshot,
        key="agent:{agent_id}:snapshot:{step}",
        id="step",
        ttl=600,
        indexes=[SortedIndex("by_step", "agent:{agent_id}:snapshots", score="step")],
    )

Key patterns name hash fields in braces (``{agent_id}``); ``{{`` and ``}}`` are
literal braces. An index member is the record's id unless ``member=`` names a
field. An index is skipped for a record whose fields it needs are absent.
Declarations are plain frozen values: no metaclass, no connection.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from agentmem.errors import InvalidId, SchemaError
from agentmem.model.codec import Codec, _enc_int
from agentmem.model.fields import check_id
from agentmem.model.keyshape import may_coincide, segments

M = TypeVar("M", bound=BaseModel)
MAX_TTL = 2**31 - 1
"""The longest TTL accepted, in seconds (about 68 years)."""

ID = "@id"
"""``member=ID`` (the default): the index holds the record's id."""


@dataclass(frozen=True)
class Template:
    """A key pattern split into literal text and field references."""

    pattern: str
    parts: tuple[tuple[Literal["L", "F"], str], ...]

    @classmethod
    def parse(cls, pattern: str) -> Template:
        """The pattern's parts (parsed once per pattern: templates are immutable)."""
        if cls is Template:
            return _parsed(pattern)
        return cls._parse(pattern)

    @classmethod
    def _parse(cls, pattern: str) -> Template:
        parts: list[tuple[Literal["L", "F"], str]] = []
        try:
            for literal, name, spec, conv in string.Formatter().parse(pattern):
                if literal:
                    parts.append(("L", literal))
                if name is not None:
                    if not name.isidentifier() or spec or conv:
                        raise SchemaError(f"bad placeholder {{{name}}} in key pattern {pattern!r}")
                    parts.append(("F", name))
        except ValueError as exc:
            raise SchemaError(f"bad key pattern {pattern!r}: {exc}") from None
        return cls(pattern, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.parts if k == "F")

    def render(self, values: Mapping[str, Any]) -> str:
        """Render with every field value checked as an id (ints pass as they are)."""
        out = []
        for kind, v in self.parts:
            if kind == "L":
                out.append(v)
                continue
            value = values.get(v)
            if value is None:
                raise InvalidId(f"key pattern {self.pattern!r} needs {v!r}")
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InvalidId(f"{v} must be a string or an int, got {type(value).__name__}")
            if isinstance(value, int):
                if value < 0:
                    raise InvalidId(f"{v} must not be negative, got {value}")
                out.append(str(value))
            else:
                try:
                    out.append(check_id(value, what=v, max_length=128))
                except ValueError as exc:
                    raise InvalidId(str(exc)) from None
        return "".join(out)

    def around(self, field: str, values: Mapping[str, Any]) -> tuple[str, str]:
        """Render all but ``field``; return the text before and after it."""
        before: list[tuple[Literal["L", "F"], str]] = []
        after: list[tuple[Literal["L", "F"], str]] = []
        target = before
        for part in self.parts:
            if part == ("F", field) and target is before:
                target = after
            else:
                target.append(part)
        if target is before:
            raise SchemaError(f"key pattern {self.pattern!r} has no {{{field}}}")
        return (Template(self.pattern, tuple(before)).render(values),
                Template(self.pattern, tuple(after)).render(values))

    def wire(self) -> list[str]:
        """The template as sent to the write script: a count, then kind+text per part."""
        return [str(len(self.parts)), *(k + v for k, v in self.parts)]


@functools.lru_cache(maxsize=1024)
def _parsed(pattern: str) -> Template:
    return Template._parse(pattern)


@dataclass(frozen=True)
class SortedIndex:
    """A sorted set: ``ZADD key score member``; ``cap`` keeps only the highest ``cap``."""

    name: str
    key: str
    score: str
    member: str = ID
    cap: int | None = None
    kind: Literal["zset"] = dc_field(default="zset", init=False)


@dataclass(frozen=True)
class SetIndex:
    """A set: ``SADD key member``."""

    name: str
    key: str
    member: str = ID
    kind: Literal["set"] = dc_field(default="set", init=False)


@dataclass(frozen=True)
class ListIndex:
    """A list in write order: ``RPUSH key member``."""

    name: str
    key: str
    member: str = ID
    kind: Literal["list"] = dc_field(default="list", init=False)


@dataclass(frozen=True)
class CounterIndex:
    """A hash of counters: ``HINCRBY key <value of field> 1``."""

    name: str
    key: str
    field: str
    kind: Literal["hash"] = dc_field(default="hash", init=False)


@dataclass(frozen=True)
class GridIndex:
    """A sorted set scored by the Z-order code of the grid cell of ``(x, y)``.

    ``x`` and ``y`` name numeric fields (positions in simulation coordinates, any
    finite floats); ``cell`` is the side of a grid cell. Radius queries over it
    are exact whatever the cell; a cell near the usual query radius keeps them
    fast (see :mod:`agentmem.plans.grid`).
    """

    name: str
    key: str
    x: str
    y: str
    cell: float = 1.0
    member: str = ID
    kind: Literal["zset"] = dc_field(default="zset", init=False)


Index = SortedIndex | SetIndex | ListIndex | CounterIndex | GridIndex


def index_fields(ix: Index) -> tuple[str, ...]:
    """Every hash field an index entry needs (key placeholders, score, member, counter)."""
    names = list(Template.parse(ix.key).fields)
    if isinstance(ix, SortedIndex):
        names.append(ix.score)
    if isinstance(ix, GridIndex):
        names += (ix.x, ix.y)
    if isinstance(ix, CounterIndex):
        names.append(ix.field)
    elif ix.member != ID:
        names.append(ix.member)
    return tuple(names)


@dataclass(frozen=True)
class Retired:
    """Where a declaration records the ids that left memory, so that none is generated again.

    ``key`` is a hash (its fields taken from the record key's, without the id), with one
    field per value of ``scope`` (e.g. a simulation id) holding the highest ``order``
    value (e.g. a step) of a record that left: whatever removes records (a tier
    transition) raises it. A record written without an id whose ``order`` is at or
    below its scope's mark does not get its template id (that id may have been given
    before): it gets ``<template id>.r<n>``, ``n`` from the key's counter field
    ``:seq``. See docs/keyspace.md, "Ids for the life of the data".

    ``moved_to``: the key pattern (with the id field) of the records that left, when
    they go on living under another key (intermediate memory: ``agent:{agent_id}:im:
    action:{action_id}``); a record written with an explicit id that such a record
    holds is refused as taken, as one whose key exists.
    """

    key: str
    scope: str
    order: str
    moved_to: str | None = None


@dataclass(frozen=True)
class RecordSpec(Generic[M]):
    """A model declared for storage. Build it with :func:`declare`."""

    model: type[M]
    key: Template
    id: str
    id_template: str | None
    ttl: int | None
    indexes: tuple[Index, ...]
    unique_in: str | None
    codec: Codec[M]
    key_fields: frozenset[str]
    reserved_ids: frozenset[str] = frozenset()
    retired: Retired | None = None

    def index(self, name: str) -> Index:
        for ix in self.indexes:
            if ix.name == name:
                return ix
        raise SchemaError(
            f"{self.model.__name__} has no index {name!r}; it has {[i.name for i in self.indexes]}"
        )

    def replace(self, *, ttl: int | Literal["keep"] | None = "keep",
                caps: Mapping[str, int | None] | None = None,
                cells: Mapping[str, float] | None = None) -> RecordSpec[M]:
        """A copy with another TTL, other sorted-index caps and/or other grid cell
        sizes (both by index name)."""
        caps = dict(caps or {})
        cells = dict(cells or {})
        for name in caps:
            if not isinstance(self.index(name), SortedIndex):
                raise SchemaError(f"index {name!r} is not a sorted index; it has no cap")
        for name in cells:
            if not isinstance(self.index(name), GridIndex):
                raise SchemaError(f"index {name!r} is not a grid index; it has no cell size")
        indexes = tuple(
            SortedIndex(ix.name, ix.key, ix.score, ix.member, caps[ix.name])
            if isinstance(ix, SortedIndex) and ix.name in caps else
            GridIndex(ix.name, ix.key, ix.x, ix.y, cells[ix.name], ix.member)
            if isinstance(ix, GridIndex) and ix.name in cells else ix
            for ix in self.indexes
        )
        return declare(
            self.model, key=self.key.pattern, id=self.id, id_template=self.id_template,
            ttl=self.ttl if ttl == "keep" else ttl, indexes=indexes, unique_in=self.unique_in,
            retired=self.retired, hash_names=dict(zip(self.codec.storage_names,
                                                      self.codec.hash_names, strict=True)),
        )


def declare(
    model: type[M],
    *,
    key: str,
    id: str,
    id_template: str | None = None,
    ttl: int | None = None,
    indexes: Iterable[Index] = (),
    unique_in: str | None = None,
    retired: Retired | None = None,
    hash_names: Mapping[str, str] | None = None,
) -> RecordSpec[M]:
    """Declare how ``model`` is stored: its key pattern, id field, TTL and indices.

    ``id`` names the field that identifies a record; it must appear in ``key``.
    With ``id_template`` (e.g. ``"{agent_id}-{step_number}-{action_type}"``) a
    record written without an id gets one rendered from its fields, made unique
    on the server by appending ``.1``, ``.2`` … when taken. ``unique_in`` names a
    sorted index whose members are checked too, so an id whose record expired
    but is still indexed is not reused. ``retired`` (:class:`Retired`) keeps generated
    ids from being given again after their records left memory. ``ttl`` is in seconds
    (``None``: no expiry). ``hash_names`` keeps some fields under other hash field
    names (storage name -> hash field); everything else still names them by their
    storage names (a compact layout, ``docs/layouts.md``).
    """
    codec = Codec(model, hash_names)
    names = set(codec.storage_names)
    template = Template.parse(key)
    if id not in names:
        raise SchemaError(f"id field {id!r} is not a field of {model.__name__}")
    if id not in template.fields:
        raise SchemaError(f"key pattern {key!r} must contain the id field {{{id}}}")
    if codec.write_time_field is not None and codec.write_time_field.storage[0] == id:
        raise SchemaError("the id field cannot be a WriteTime() field")
    ixs = tuple(indexes)
    seen: set[str] = set()
    for ix in ixs:
        if ix.name in seen:
            raise SchemaError(f"index name {ix.name!r} declared twice")
        seen.add(ix.name)
        missing = [f for f in index_fields(ix) if f not in names and f != id]
        if missing:
            raise SchemaError(f"index {ix.name!r} refers to unknown fields {missing}")
        if isinstance(ix, SortedIndex) and ix.cap is not None and ix.cap < 1:
            raise SchemaError(f"index {ix.name!r}: cap must be at least 1")
    for f in template.fields:
        if f not in names:
            raise SchemaError(f"key pattern {key!r} refers to unknown field {f!r}")
    if id_template is not None:
        unknown = [f for f in Template.parse(id_template).fields if f not in names or f == id]
        if unknown:
            raise SchemaError(f"id_template {id_template!r} refers to bad fields {unknown}")
    if unique_in is not None:
        ux = next((ix for ix in ixs if ix.name == unique_in), None)
        if not isinstance(ux, SortedIndex) or ux.member != ID or ux.cap is not None:
            raise SchemaError("unique_in must name an uncapped sorted index of record ids")
    if retired is not None:
        if id_template is None:
            raise SchemaError("retired needs an id_template (it changes generated ids only)")
        rfields = Template.parse(retired.key).fields
        bad = [f for f in rfields if f not in template.fields or f == id]
        if bad or retired.scope not in names or retired.order not in names:
            raise SchemaError(f"retired: the key {retired.key!r} may use the record key's "
                              "fields but the id; scope and order must be fields")
        if not codec.field_for(retired.order).numeric:
            raise SchemaError(f"retired: order field {retired.order!r} must be a number")
        if retired.moved_to is not None:
            mfields = Template.parse(retired.moved_to).fields
            if id not in mfields or any(f not in template.fields for f in mfields):
                raise SchemaError(f"retired: moved_to {retired.moved_to!r} must hold the id "
                                  "field and only fields of the record key")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool)
                            or not 0 < ttl <= MAX_TTL):
        raise SchemaError(f"ttl must be 1..{MAX_TTL} seconds or None, got {ttl!r}")
    for ix in ixs:
        if isinstance(ix, SortedIndex) and not codec.field_for(ix.score).numeric:
            raise SchemaError(f"index {ix.name!r}: score field {ix.score!r} must be an int "
                              "or a float (sorted-set scores are numbers)")
        if isinstance(ix, GridIndex):
            for f in (ix.x, ix.y):
                if not codec.field_for(f).stores_numbers:
                    raise SchemaError(f"grid index {ix.name!r}: {f!r} must be an int or a "
                                      "float field")
            if isinstance(ix.cell, bool) or not isinstance(ix.cell, (int, float)) or not (
                    math.isfinite(ix.cell) and ix.cell > 0):
                raise SchemaError(f"grid index {ix.name!r}: cell must be a finite number > 0, "
                                  f"got {ix.cell!r}")
    _check_keys_apart(template, id, ixs, {n for n in names
                                          if codec.field_for(n).encode is _enc_int})
    key_fields = frozenset(template.fields).union(
        *(Template.parse(ix.key).fields for ix in ixs)
    ) | ({ix.field for ix in ixs if isinstance(ix, CounterIndex)})
    return RecordSpec(
        model=model, key=template, id=id, id_template=id_template, ttl=ttl, indexes=ixs,
        unique_in=unique_in, codec=codec, key_fields=frozenset(key_fields),
        reserved_ids=_reserved_ids(template, id, ixs), retired=retired,
    )


_REDIS_TYPE = {SortedIndex: "sorted set", GridIndex: "sorted set", SetIndex: "set",
               ListIndex: "list", CounterIndex: "hash"}


def _check_keys_apart(record: Template, id: str, indexes: tuple[Index, ...],
                      ints: set[str]) -> None:
    """Refuse keys of one declaration that values can make one key of two types: a
    write would stop half done at the second (Redis refuses a command on a key of
    another type, and what the script wrote before stays). The record key may equal an
    index key only where the index has literal text at the id (that id is reserved:
    :func:`_reserved_ids`); two indexes of different Redis types never."""
    at = next(i for i, seg in enumerate(segments(record.parts)) if ("F", id) in seg)
    keyed = [(ix, Template.parse(ix.key).parts) for ix in indexes]
    for ix, parts in keyed:
        if may_coincide(record.parts, parts, ints) and any(
                k == "F" for k, _ in segments(parts)[at]):
            raise SchemaError(
                f"index {ix.name!r}: its key {ix.key!r} can be a record's key "
                f"{record.pattern!r} (when the id is the value there); give one of them "
                "literal text the other lacks")
    for n, (a, pa) in enumerate(keyed):
        for b, pb in keyed[n + 1:]:
            ta, tb = _REDIS_TYPE[type(a)], _REDIS_TYPE[type(b)]
            if ta != tb and may_coincide(pa, pb, ints):
                raise SchemaError(
                    f"indexes {a.name!r} ({ta}) and {b.name!r} ({tb}) can name one key "
                    f"({a.key!r}, {b.key!r}); give one of them literal text the other lacks")


def _reserved_ids(record: Template, id: str, indexes: tuple[Index, ...]) -> frozenset[str]:
    """Ids that would render a record key equal to an index key.

    With ``agent:{agent_id}:action:{action_id}`` and ``agent:{agent_id}:action:timeline``,
    the id ``timeline`` is reserved. Found by rendering every field as a marker.
    """
    marker = "\x01"
    def shape(t: Template) -> str:
        return "".join(v if k == "L" else marker for k, v in t.parts)
    parts = record.parts
    pos = parts.index(("F", id))
    prefix = "".join(v if k == "L" else marker for k, v in parts[:pos])
    suffix = "".join(v if k == "L" else marker for k, v in parts[pos + 1:])
    out = set()
    for ix in indexes:
        s = shape(Template.parse(ix.key))
        if s.startswith(prefix) and s.endswith(suffix) and len(s) > len(prefix) + len(suffix):
            middle = s[len(prefix): len(s) - len(suffix)]
            if marker not in middle:
                out.add(middle)
    return frozenset(out)
