"""Encode records into calls of the generic write script (see :mod:`agentmem.scripts`).

The header (key templates, index declarations) is built once per declaration;
each record adds its id mode, base id, a presence mask and its field values.
Every record is validated and encoded before the first call is built, so bad
input raises before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agentmem.errors import InvalidId, InvalidInput
from agentmem.fields import check_id
from agentmem.plan import Arg, Call, script_call
from agentmem.schema import (
    ID,
    CounterIndex,
    ListIndex,
    RecordSpec,
    SetIndex,
    SortedIndex,
    Template,
    index_fields,
)
from agentmem.scripts import WRITE

M = TypeVar("M", bound=BaseModel)

_KIND = {SortedIndex: "z", SetIndex: "s", ListIndex: "l", CounterIndex: "h"}

Encoded = list[Arg]
"""One record's arguments: mode ('g' generate / 'f' fixed), base id, the values
the keys and indices need ('' when absent), the number of hash arguments, and
the hash's field/value pairs."""


class WritePlanner(Generic[M]):
    """Builds write-script calls for one declaration."""

    def __init__(self, spec: RecordSpec[M], *, batch_size: int = 500) -> None:
        self.spec = spec
        self.batch_size = batch_size
        codec = spec.codec
        names = codec.storage_names
        self.names = names
        self.id_pos = names.index(spec.id)
        stamp = codec.write_time_field
        self.stamp_name = stamp.storage[0] if stamp else ""
        self.skip = {self.id_pos} | ({names.index(self.stamp_name)} if stamp else set())
        self.key_pos = [i for i, n in enumerate(names) if n in spec.key_fields and i != self.id_pos]
        self.id_template = Template.parse(spec.id_template) if spec.id_template else None
        self.id_refs = (
            [names.index(f) for f in self.id_template.fields] if self.id_template else []
        )
        needed: list[str] = []
        for f in (*spec.key.fields, *(f for ix in spec.indexes for f in index_fields(ix))):
            if f not in needed and f != spec.id:
                needed.append(f)
        self.kpos = [names.index(f) for f in needed]
        probe = 0
        header: list[Arg] = [spec.ttl or 0, spec.id, self.stamp_name, len(needed), *needed]
        header += spec.key.wire()
        idx: list[Arg] = []
        for n, ix in enumerate(spec.indexes, start=1):
            if ix.name == spec.unique_in:
                probe = n
            a = ix.score if isinstance(ix, SortedIndex) else (
                ix.field if isinstance(ix, CounterIndex) else "")
            member = "" if isinstance(ix, CounterIndex) or ix.member == ID else ix.member
            cap = ix.cap if isinstance(ix, SortedIndex) and ix.cap else 0
            idx += [_KIND[type(ix)], *Template.parse(ix.key).wire(), a, member, cap]
        self.header: list[Arg] = [*header, probe, len(spec.indexes), *idx]

    def encode(self, record: M) -> Encoded:
        """Validate and encode one record; raises :class:`InvalidInput` on bad data."""
        spec = self.spec
        if not isinstance(record, spec.model):
            raise InvalidInput(
                f"expected a {spec.model.__name__}, got {type(record).__name__}"
            )
        vals = spec.codec.encode(record)
        for i in self.key_pos:
            v = vals[i]
            if isinstance(v, str):
                try:
                    check_id(v, what=self.names[i], max_length=128)
                except ValueError as exc:
                    raise InvalidId(str(exc)) from None
        given = vals[self.id_pos]
        if given is None:
            if self.id_template is None:
                raise InvalidInput(f"{spec.model.__name__}.{spec.id} is required")
            parts = {self.names[i]: vals[i] for i in self.id_refs}
            mode, base = "g", self.id_template.render(parts)
        else:
            mode, base = "f", str(given)
            try:
                check_id(base, what=spec.id, max_length=128)
            except ValueError as exc:
                raise InvalidId(str(exc)) from None
            if base in spec.reserved_ids:
                raise InvalidId(f"{spec.id} {base!r} is reserved: it names an index key")
        names = self.names
        skip = self.skip
        kvals: list[Arg] = []
        for i in self.kpos:
            v = vals[i]
            if v is None:
                kvals.append("")
            elif v == "":
                raise InvalidInput(f"{names[i]} is used in a key or index and must not be empty")
            else:
                kvals.append(v)
        pairs: list[Arg] = []
        for i, v in enumerate(vals):
            if v is not None and i not in skip:
                pairs += (names[i], v)
        return [mode, base, *kvals, len(pairs), *pairs]

    def calls(self, encoded: Sequence[Encoded]) -> list[Call]:
        """One script call per batch of encoded records."""
        out = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            argv: list[Arg] = [len(chunk), *self.header]
            for args in chunk:
                argv += args
            out.append(script_call(WRITE, argv))
        return out

    def encode_all(self, records: Iterable[M]) -> list[Encoded]:
        out = []
        for n, rec in enumerate(records):
            try:
                out.append(self.encode(rec))
            except InvalidInput as exc:
                raise type(exc)(f"record {n}: {exc}") from None
        return out


def parse_write(replies: list[Any]) -> tuple[int | None, list[str | None], dict[int, str]]:
    """Read write-script replies: (stamp, id or None per record, failures by position)."""
    stamp: int | None = None
    ids: list[str | None] = []
    failed: dict[int, str] = {}
    for reply in replies:
        head = reply[0]
        if head not in (b"", ""):
            stamp = int(head)
        for item in reply[1:]:
            text = item.decode() if isinstance(item, bytes) else str(item)
            if text.startswith("\x00"):
                failed[len(ids)] = text[1:]
                ids.append(None)
            else:
                ids.append(text)
    return stamp, ids, failed
