"""Plan ``update``, ``delete`` and ``exists`` of stored records; no I/O.

A record's index entries are rendered **on the server** from its stored hash (the
delete and update scripts, :data:`~agentmem.lua.scripts.DELETE` and
:data:`~agentmem.lua.scripts.UPDATE`), from a description of the declaration's
indices sent as arguments: :func:`unindex_body` writes it (the format is in
``agentmem/lua/src/lib/unindex.lua``). So a delete needs only the record's key and
id, and neither script trusts the client's idea of what is stored.

The new entries of an update are the write planner's own (the groups of the write
script, :mod:`agentmem.plans.write`), so an updated record is indexed exactly as a
written one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from agentmem.errors import InvalidInput, SchemaError
from agentmem.model.schema import (
    ID,
    CounterIndex,
    Index,
    ListIndex,
    RecordSpec,
    SetIndex,
    SortedIndex,
    Template,
)
from agentmem.plans.plan import Arg
from agentmem.plans.write import WritePlanner
from agentmem.plans.writeargs import _append_groups, _merge_groups

M = TypeVar("M", bound=BaseModel)

__all__ = ["fixed_args", "fixed_fields", "new_entries", "record_key", "section", "unindex_body"]


def _parts(pattern: str, spec: RecordSpec[Any]) -> list[Arg]:
    """A key template as the scripts render it from a stored hash: its fields under
    their hash field names (``codec.wire``)."""
    parts = Template.parse(pattern).parts
    wire = spec.codec.wire
    return [len(parts), *(kind + (wire(value) if kind == "F" else value)
                          for kind, value in parts)]


def _witness(ix: Index, spec: RecordSpec[Any]) -> list[Arg]:
    """For an index of field values (``member=`` a field), a set of record ids whose
    emptiness says no record has the value any more: a :class:`SetIndex` of ids whose
    key names the member field and only fields of the index's key (the action
    layout's ``sim_step`` for ``sim_steps``). None: the value is kept."""
    member = getattr(ix, "member", ID)
    if member == ID or not isinstance(ix, (SortedIndex, SetIndex)):
        return [0]
    allowed = {*Template.parse(ix.key).fields, member}
    for other in spec.indexes:
        if isinstance(other, SetIndex) and other.member == ID:
            fields = set(Template.parse(other.key).fields)
            if member in fields and fields <= allowed:
                return _parts(other.key, spec)
    return [0]


def _source(ix: SortedIndex, spec: RecordSpec[Any]) -> SortedIndex | None:
    """For a capped sorted index of record ids, the uncapped sorted index of ids it
    holds the highest entries of (same score, key of the same fields: the timeline of
    the relative index), from which the delete and update scripts refill it when an
    entry leaves it; None: none is declared (it is not refilled)."""
    fields = set(Template.parse(ix.key).fields)
    for other in spec.indexes:
        if (isinstance(other, SortedIndex) and other.cap is None and other.member == ID
                and other.score == ix.score and set(Template.parse(other.key).fields) == fields):
            return other
    return None


def unindex_body(spec: RecordSpec[Any]) -> list[Arg]:
    """The declaration's part of a section of the delete and update scripts: its
    indices (kind, member, key template, witness) and its retired marks. A capped sorted
    index of ids with a :func:`_source` is ``z<cap>`` and its witness is that source."""
    wire = spec.codec.wire
    out: list[Arg] = [len(spec.indexes)]
    for ix in spec.indexes:
        if isinstance(ix, CounterIndex):
            kind, member = "h", wire(ix.field)
        else:
            kind = "s" if isinstance(ix, SetIndex) else "l" if isinstance(ix, ListIndex) else "z"
            member = "" if ix.member == ID else wire(ix.member)
        if isinstance(ix, SortedIndex) and ix.cap is not None and ix.member == ID:
            source = _source(ix, spec)
            if source is not None:
                out += (f"z{ix.cap}", member, *_parts(ix.key, spec), *_parts(source.key, spec))
                continue
        out += (kind, member, *_parts(ix.key, spec), *_witness(ix, spec))
    if spec.retired is None:
        out.append(0)
    else:
        out += (*_parts(spec.retired.key, spec), wire(spec.retired.scope),
                wire(spec.retired.order))
    return out


def section(body: Sequence[Arg], key: str, rid: str, extra: Sequence[str] = ()) -> list[Arg]:
    """One record's section: its hash key and id, the declaration's body, and the sets
    the id is removed from once a hash was deleted (an agent's pins)."""
    return [key, rid, *body, len(extra), *extra]


def fixed_fields(spec: RecordSpec[Any]) -> list[str]:
    """The hash fields an update may not change: those of the record key, those the id
    template is made of and the retired marks' scope and order (for actions: the agent,
    the id, the simulation, the step and the type)."""
    names = set(spec.key.fields)
    if spec.id_template:
        names |= set(Template.parse(spec.id_template).fields)
    if spec.retired is not None:
        names |= {spec.retired.scope, spec.retired.order}
    return sorted(names)


def new_entries(writer: WritePlanner[M], vals: list[Arg | None], rid: str, *,
                local_only: bool = False) -> tuple[list[Arg], list[Arg]]:
    """The hash arguments (without the id and the write time) and the index groups
    (``ngroup`` then ``code key n args``) the write script would write for one record
    of encoded values ``vals`` under id ``rid``; ``local_only``: a cluster planner's
    indices in the record's slot (the caller writes the others)."""
    if writer.remote and not local_only:
        raise SchemaError("a record with indices in other slots is written in two steps")
    recargs: list[Arg] = []
    groups: dict[str, list[Arg]] = {}
    meta: dict[str, Any] = {}
    counters: dict[str, dict[Arg, int]] = {}
    zmembers: dict[str, dict[Arg, Arg]] = {}
    writer._emit([(vals, rid, ())], recargs, groups, meta, counters, zmembers)
    _merge_groups(groups, counters, zmembers)
    out: list[Arg] = []
    _append_groups(out, groups, meta)
    return recargs[1:], out


def fixed_args(writer: WritePlanner[M], vals: Sequence[Arg | None]) -> list[Arg]:
    """``nfixed`` and per fixed field ``field present value`` (see :func:`fixed_fields`)."""
    names = fixed_fields(writer.spec)
    out: list[Arg] = [len(names)]
    for name in names:
        v = vals[writer.names.index(name)]
        if isinstance(v, bytes):
            raise InvalidInput(f"{name} is fixed and must be text or a number")
        field = writer.spec.codec.wire(name)
        out += (field, "0", "") if v is None else (field, "1", v)
    return out


def record_key(writer: WritePlanner[M], vals: Sequence[Arg | None], rid: str) -> str:
    """The hash key of the record of encoded values ``vals`` under id ``rid``."""
    p, s = writer.prefix, writer.suffix
    return p.fmt % p.get(vals) + rid + s.fmt % s.get(vals)
