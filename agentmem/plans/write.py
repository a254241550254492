"""Plan writes for the write script (:data:`agentmem.lua.scripts.WRITE`).

Two phases, so that bad input never reaches the server and the rest of the
client's work overlaps the server's:

1. :meth:`WritePlanner.prepare` validates and encodes every record (the only
   step that can fail on bad data) before anything is sent;
2. :meth:`WritePlanner.batch` renders each record's keys and groups its index
   entries per key, one script call per batch, built while the previous batch
   runs on the server.

The script checks every key it will touch, decides ids that are already taken
on the server, and then writes each hash and one variadic command per index key.
The arguments of one call are described in :mod:`agentmem.plans.writeargs`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel

from agentmem.config import DEFAULT_BATCH_SIZE
from agentmem.errors import ConfigError, InvalidId, InvalidInput
from agentmem.lua.dualwrite import OUTBOX_APPEND
from agentmem.lua.scripts import WRITE
from agentmem.model.codec import _enc_int, _enc_str
from agentmem.model.fields import FORBIDDEN, check_id
from agentmem.model.generated import run_source
from agentmem.model.schema import (
    ID,
    CounterIndex,
    GridIndex,
    ListIndex,
    RecordSpec,
    SetIndex,
    SortedIndex,
    Template,
)
from agentmem.plans.keyspace import hash_tag
from agentmem.plans.plan import LEAST_TEXT_FIRST, Arg, Call, script_call
from agentmem.plans.writeargs import (
    MAX_SCORE_INT,
    Marker,
    _append_groups,
    _compile_emit,
    _Compiled,
    _Index,
    _merge_groups,
    _render,
    _split,
    number_texts,
    outbox_group,
    pack,
    split_calls,
    split_slots,
    text,
)

M = TypeVar("M", bound=BaseModel)


class Prepared:
    """One validated, encoded record."""

    __slots__ = ("base", "mode", "vals")

    def __init__(self, mode: str, base: str, vals: list[Arg | None]) -> None:
        self.mode = mode  # 'g': id generated from the template, 'f': given by the caller
        self.base = base
        self.vals = vals


class WritePlanner(Generic[M]):
    """Plans write-script calls for one declaration."""

    def __init__(self, spec: RecordSpec[M], *, batch_size: int = DEFAULT_BATCH_SIZE,
                 cluster: bool = False) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.cluster = cluster
        self.outbox: tuple[str, str, str, int] | None = None
        """The outbox group's (outbox key, registry key, lease key, lease ms); None: none."""
        self.marker: Marker | None = None  # the dual writer's (key, token): outbox_group
        self.remote: list[_Index] = []
        """Cluster mode: the indexes outside the record's slot, written by
        :meth:`remote_calls` once the record's id is final (empty otherwise)."""
        codec = spec.codec
        names = codec.storage_names
        self.names = names
        self.id_pos = names.index(spec.id)
        stamp = codec.write_time_field
        self.stamp_name = stamp.storage[0] if stamp else ""
        self.id_field = codec.wire(spec.id)
        """The hash field of the id (the storage name unless the layout renames it)."""
        self.stamp_field = codec.wire(self.stamp_name) if stamp else ""
        """The hash field of the write time ('': none)."""
        skip = {self.id_pos} | ({names.index(self.stamp_name)} if stamp else set())
        self.hash_pos = [i for i in range(len(names)) if i not in skip]
        self.key_pos = [i for i, n in enumerate(names) if n in spec.key_fields and i != self.id_pos]
        self.int_key_pos = [i for i, n in enumerate(names) if n in spec.key_fields]
        self.id_template = _Compiled.of(Template.parse(spec.id_template), names) \
            if spec.id_template else None
        self.prefix, self.suffix = (
            _Compiled.of(Template(spec.key.pattern, part), names)
            for part in _split(spec.key.parts, spec.id)
        )
        self.indexes: list[_Index] = []
        self.probe: _Compiled | None = None
        self.retired: _Compiled | None = None
        self._retired_pos = (-1, -1)
        self.moved: tuple[_Compiled, _Compiled] | None = None  # the key around the id
        if spec.retired is not None:
            self.retired = _Compiled.of(Template.parse(spec.retired.key), names)
            self._retired_pos = (names.index(spec.retired.scope),
                                 names.index(spec.retired.order))
            if spec.retired.moved_to is not None:
                mp, ms = (_Compiled.of(Template(spec.retired.moved_to, part), names) for part
                          in _split(Template.parse(spec.retired.moved_to).parts, spec.id))
                self.moved = (mp, ms)
        for ix in spec.indexes:
            key = _Compiled.of(Template.parse(ix.key), names)
            if isinstance(ix, SortedIndex):
                member = None if ix.member == ID else names.index(ix.member)
                self.indexes.append(_Index("ZADD", "zset", key, names.index(ix.score), member,
                                           ix.cap or 0))
                if ix.name == spec.unique_in:
                    self.probe = key
            elif isinstance(ix, CounterIndex):
                self.indexes.append(_Index("HINCRBY", "hash", key, names.index(ix.field),
                                           None, 0))
            elif isinstance(ix, GridIndex):
                member = None if ix.member == ID else names.index(ix.member)
                self.indexes.append(_Index("ZADD", "zset", key, None, member, 0,
                                           (names.index(ix.x), names.index(ix.y), ix.cell)))
            else:
                member = None if ix.member == ID else names.index(ix.member)
                cmd, typ = ("SADD", "set") if isinstance(ix, SetIndex) else ("RPUSH", "list")
                assert isinstance(ix, (SetIndex, ListIndex))
                self.indexes.append(_Index(cmd, typ, key, None, member, 0))
        self._key_get = itemgetter(*self.key_pos) if len(self.key_pos) > 1 else (
            (lambda vals, i=self.key_pos[0]: (vals[i],)) if self.key_pos else (lambda vals: ()))
        if self.id_template is not None:
            self._id_get = self.id_template.get
            self._id_fmt = self.id_template.fmt
        self.index_pos = sorted({
            p for ix in self.indexes for p in (*ix.key.refs, ix.score, ix.member) if p is not None
        })
        self._score_pos = sorted({ix.score for ix in self.indexes
                                  if ix.cmd == "ZADD" and ix.score is not None})
        # a generated id made only of key fields is checked with them; one made of
        # other fields is checked on its own
        self._check_generated = spec.id_template is not None and not set(
            Template.parse(spec.id_template).fields) <= set(spec.key_fields)
        int_keys = set(self.int_key_pos)
        index_checks = dict.fromkeys(self.index_pos, False)
        index_checks.update(dict.fromkeys(int_keys, True))
        self._index_checks = sorted(index_checks.items())
        exact = {i for i, n in enumerate(names)
                 if codec.field_for(n).encode in (_enc_str, _enc_int)}
        texts = number_texts([codec.field_for(n).encode for n in names])
        if cluster:
            self.indexes, self.remote = split_slots(spec, self.indexes)
            self._emit_remote = _compile_emit([], self.remote, exact, texts)
        self._emit = _compile_emit([(i, codec.wire(names[i])) for i in self.hash_pos],
                                   self.indexes,
                                   exact, texts)
        # the values the record key's prefix and suffix and the probe key are made
        # of: records with equal values (str and int fields) share them
        scope_refs = sorted({*self.prefix.refs, *self.suffix.refs,
                             *(self.probe.refs if self.probe is not None else ()),
                             *(self.retired.refs if self.retired is not None else ()),
                             *(r for m in self.moved or () for r in m.refs)})
        self._scope_get: Callable[[Sequence[Any]], Any] | None = (
            itemgetter(*scope_refs) if scope_refs and set(scope_refs) <= exact else None)
        self._fast = self._compile_fast()

    def with_outbox(self, key: str, registry: str, lease_key: str, lease_ms: int,
                    marker: Marker | None = None) -> WritePlanner[M]:
        """A copy of this planner whose calls also append each record's key to the list
        ``key`` (named in the set ``registry``) and renew ``lease_key`` for ``lease_ms``,
        in the same atomic script call; on a cluster (the three keys under one hash tag)
        in a call of its own, :meth:`outbox_call`. ``marker``: see ``outbox_group``."""
        if self.cluster and len({hash_tag(k) for k in (key, registry, lease_key)}) != 1:
            raise ConfigError("on a Redis Cluster an outbox's list, registry and lease "
                              "need one hash tag (one slot)")
        out = copy.copy(self)
        out.outbox, out.marker = (key, registry, lease_key, lease_ms), marker
        return out

    def outbox_call(self, stored: Sequence[tuple[Prepared, str]]) -> Call:
        """Cluster mode, with an outbox: the call that lists the keys of ``stored``
        records (with their final ids), in order, in the outbox, names the outbox in its
        registry and renews the lease (``outbox_append.lua``, in the outbox's slot)."""
        assert self.outbox is not None
        key, registry, lease_key, lease_ms = self.outbox
        keys = [(sc := self._scope(rec))[0] + rid + sc[1] for rec, rid in stored]
        return script_call(OUTBOX_APPEND, (str(lease_ms), *keys), (key, registry, lease_key))

    def remote_calls(self, records: Sequence[tuple[Prepared, str]]) -> list[Call]:
        """Cluster mode: write-script calls adding ``records`` (with their final ids) to
        the indexes outside their slot, one call per slot (hash tag); the script then
        writes no record, only those index entries, after checking their types."""
        items: list[tuple[list[Arg | None], str, tuple[Arg, ...]]] = [
            (rec.vals, rid, ()) for rec, rid in records]
        groups: dict[str, list[Arg]] = {}
        meta: dict[str, _Index] = {}
        counters: dict[str, dict[Arg, int]] = {}
        zmembers: dict[str, dict[Arg, Arg]] = {}
        self._emit_remote(items, [], groups, meta, counters, zmembers)
        _merge_groups(groups, counters, zmembers)
        by_tag: dict[str, dict[str, list[Arg]]] = {}
        for key, flat in groups.items():
            start = key.index("{") + 1
            by_tag.setdefault(key[start:key.index("}", start)], {})[key] = flat
        calls = []
        for part in by_tag.values():
            argv: list[Arg] = [0, "0", self.id_field, "", 0, 0]
            _append_groups(argv, part, meta)
            calls.append(script_call(WRITE, [pack(argv)], route=next(iter(part))))
        return calls

    def _compile_fast(self) -> Callable[[list[Arg | None]], Prepared | None]:
        """Generate the checks of :meth:`prepare` for encoded values, straight-line,
        for the common case: a record they pass is prepared (its id generated from
        the template); any other gives None and goes through :meth:`prepare`'s own
        checks, which explain what is wrong."""
        str_pos = {i for i, n in enumerate(self.names)
                   if self.spec.codec.field_for(n).encode is _enc_str}
        env: dict[str, Any] = {"Prepared": Prepared, "FORBIDDEN": FORBIDDEN.search,
                               "check_id": self._check_id}
        lines = ["def fast(vals):"]
        if self.id_template is None or not self.key_pos:
            lines.append("    return None")
        else:
            # key values: every str one non-empty, at most 128 characters, none of the
            # forbidden characters
            for n, i in enumerate(self.key_pos):
                lines.append(f"    k{n} = vals[{i}]")
                test = f"k{n} is not None" if i in str_pos else f"type(k{n}) is str"
                lines.append(f"    if {test} and (not k{n} or len(k{n}) > 128):")
                lines.append("        return None")
            keys = [f"k{n}" for n, i in enumerate(self.key_pos)]
            lines.append("    if FORBIDDEN(''.join([x for x in (" + ", ".join(keys)
                         + ",) if type(x) is str])):")
            lines.append("        return None")
            for i, negative in self._index_checks:
                if i == self.id_pos or (i in str_pos and i in self.key_pos):
                    continue  # checked above, or must be None (below)
                lines.append(f"    v = vals[{i}]")
                if negative:
                    lines.append("    if v == '' or (type(v) is int and v < 0):")
                else:
                    lines.append("    if v == '':")
                lines.append("        return None")
            for i in self._score_pos:
                lines.append(f"    v = vals[{i}]")
                lines.append(f"    if type(v) is int and not {-MAX_SCORE_INT} <= v <= "
                             f"{MAX_SCORE_INT}:")
                lines.append("        return None")
            env["ID_GET"], env["ID_FMT"] = self._id_get, self._id_fmt
            lines.append(f"    if vals[{self.id_pos}] is not None:")
            lines.append("        return None")
            lines.append("    parts = ID_GET(vals)")
            lines.append("    if None in parts:")
            lines.append("        return None")
            lines.append("    base = ID_FMT % parts")
            if self._check_generated:
                lines.append("    check_id(base)")
            lines.append("    return Prepared('g', base, vals)")
        run_source(lines, env)  # source built above from the declaration
        return cast("Callable[[list[Arg | None]], Prepared | None]", env["fast"])

    # -- phase 1: validate and encode (may raise; nothing has been sent) ------

    def prepare(self, record: M) -> Prepared:
        spec = self.spec
        if not isinstance(record, spec.model):
            raise InvalidInput(f"expected a {spec.model.__name__}, got {type(record).__name__}")
        return self.prepare_encoded(spec.codec.encode(record))

    def prepare_encoded(self, vals: list[Arg | None]) -> Prepared:
        """:meth:`prepare` from the values ``codec.encode`` gives (or a row's, rows.py)."""
        done, spec = self._fast(vals), self.spec
        if done is not None:
            return done
        keyvals = [v for v in self._key_get(vals) if type(v) is str]
        joined = "".join(keyvals)
        if FORBIDDEN.search(joined) or "" in keyvals or (
                len(joined) > 128 and max(map(len, keyvals)) > 128):
            self._explain_key(vals)
        for i, empty_or_negative in self._index_checks:
            v = vals[i]
            if v == "" or (empty_or_negative and type(v) is int and v < 0):
                self._explain_index(i, v)
        for i in self._score_pos:
            v = vals[i]
            if type(v) is int and not -MAX_SCORE_INT <= v <= MAX_SCORE_INT:
                raise InvalidInput(f"{self.names[i]} = {v} is a sorted-set score; scores are "
                                   f"doubles, exact for integers up to 2**53")
        given = vals[self.id_pos]
        if given is None:
            if self.id_template is None:
                raise InvalidInput(f"{spec.model.__name__}.{spec.id} is required")
            parts = self._id_get(vals)
            if None in parts:
                raise InvalidInput(f"the id of {spec.model.__name__} needs {spec.id_template}")
            base = self._id_fmt % parts
            if self._check_generated:
                self._check_id(base)
            return Prepared("g", base, vals)
        if type(given) is int and given < 0:
            raise InvalidId(f"{spec.id} is part of a key and must not be negative, got {given}")
        base = str(given)
        self._check_id(base)
        return Prepared("f", base, vals)

    def _check_id(self, rid: str) -> None:
        try:
            check_id(rid, what=self.spec.id, max_length=128)
        except ValueError as exc:
            raise InvalidId(str(exc)) from None
        if rid in self.spec.reserved_ids:
            raise InvalidId(f"{self.spec.id} {rid!r} is reserved: it names an index key")

    def _explain_key(self, vals: Sequence[Any]) -> None:
        for i in self.key_pos:
            v = vals[i]
            if isinstance(v, str):
                try:
                    check_id(v, what=self.names[i], max_length=128)
                except ValueError as exc:
                    raise InvalidId(str(exc)) from None

    def _explain_index(self, i: int, v: Any) -> None:
        if v == "":
            raise InvalidInput(f"{self.names[i]} is used in an index and must not be empty")
        raise InvalidId(f"{self.names[i]} is part of a key and must not be negative, got {v}")

    def prepare_all(self, records: Iterable[M]) -> list[Prepared]:
        out = []
        for n, rec in enumerate(records):
            try:
                out.append(self.prepare(rec))
            except InvalidInput as exc:
                raise type(exc)(f"record {n}: {exc}") from None
        return out

    # -- phase 2: render keys, group per key (cannot fail) ---------------------

    def batch(self, records: Sequence[Prepared]) -> tuple[Call, list[str]]:
        """One script call for ``records``, and the id each record gets unless the
        server finds it taken (the script then reports the id it chose)."""
        scopes: dict[tuple[str, str, str, str, str, str], int] = {}
        recargs: list[Arg] = []
        groups: dict[str, list[Arg]] = {}
        meta: dict[str, _Index] = {}
        counters: dict[str, dict[Arg, int]] = {}
        zmembers: dict[str, dict[Arg, Arg]] = {}
        probes: dict[str, list[str]] = {}
        used: dict[str, int] = {}
        guessed: list[str] = []
        prefix_c, suffix_c, probe = self.prefix, self.suffix, self.probe
        items: list[tuple[list[Arg | None], str, tuple[Arg, ...]]] = []
        # ids given by the caller are reserved first, so no generated id takes one
        pfmt, pget, sfmt, sget = prefix_c.fmt, prefix_c.get, suffix_c.fmt, suffix_c.get
        kfmt, kget = (probe.fmt, probe.get) if probe is not None else ("", None)
        retired = self.retired
        rfmt, rget = (retired.fmt, retired.get) if retired is not None else ("", None)
        rs_pos, ro_pos = self._retired_pos
        moved = self.moved
        reserved = {
            pfmt % pget(r.vals) + r.base + sfmt % sget(r.vals) for r in records if r.mode == "f"
        }
        scope_get = self._scope_get
        known: dict[Any, tuple[str, str, int, list[str] | None]] = {}
        for rec in records:
            vals = rec.vals
            sk = scope_get(vals) if scope_get is not None else None
            scope_info = known.get(sk) if scope_get is not None else None
            if scope_info is None:
                prefix = pfmt % pget(vals)
                suffix = sfmt % sget(vals)
                pkey = None
                if kget is not None:
                    kvals = kget(vals)
                    if None not in kvals:
                        pkey = kfmt % kvals
                rkey = ""
                if rget is not None:
                    rvals = rget(vals)
                    if None not in rvals:
                        rkey = rfmt % rvals
                mp, ms = ("", "") if moved is None else (
                    moved[0].fmt % moved[0].get(vals), moved[1].fmt % moved[1].get(vals))
                skey = (prefix, suffix, pkey or "", rkey, mp, ms)
                sno = scopes.get(skey)
                if sno is None:
                    sno = scopes[skey] = len(scopes) + 1
                plist = None
                if pkey is not None:
                    plist = probes.get(pkey)
                    if plist is None:
                        plist = probes[pkey] = []
                scope_info = (prefix, suffix, sno, plist)
                if scope_get is not None:
                    known[sk] = scope_info
            prefix, suffix, sno, plist = scope_info
            rid = base = rec.base
            if rec.mode == "g":
                # ids repeated within the batch get .1, .2 here, skipping every id
                # another record of the batch has; the script redoes this for a
                # base with an id already taken on the server
                scope = prefix + base + suffix
                n = used.get(scope, 0)
                if n == 0 and scope not in reserved:
                    key = scope
                    n = 1
                else:
                    while True:
                        rid = base if n == 0 else f"{base}.{n}"
                        n += 1
                        key = prefix + rid + suffix
                        if key not in reserved:
                            break
                used[scope] = n
                reserved.add(key)
            guessed.append(rid)
            if plist is not None:
                plist.append(rid)
            rs = ro = None
            if rec.mode == "g" and rget is not None:
                rs, ro = vals[rs_pos], vals[ro_pos]
            if rs is None or ro is None:
                rs = ro = ""
            else:
                # as text, like every value: an int order beyond 64 bits does not pack
                # as a MessagePack int (the script reads it with tonumber either way)
                if type(rs) is not str:
                    rs = text(rs)
                if type(ro) is not str:
                    ro = text(ro)
            items.append((vals, rid, (rec.mode, base, rid, sno, rs, ro)))
        self._emit(items, recargs, groups, meta, counters, zmembers)
        argv: list[Arg] = [len(records), str(self.spec.ttl or 0), self.id_field,
                           self.stamp_field, len(scopes)]
        for skey in scopes:
            argv += skey
        argv += recargs
        argv.append(len(probes))
        for pkey, ids in probes.items():
            argv += (pkey, len(ids))
            argv += ids
        _merge_groups(groups, counters, zmembers)
        at = len(argv)
        _append_groups(argv, groups, meta)
        if self.outbox is not None and not self.cluster:
            argv[at] = int(argv[at]) + 1
            argv += outbox_group(self.outbox, self.marker)
        route = str(argv[5]) if self.cluster and scopes else None  # the records' slot
        call = script_call(WRITE, [pack(argv)], route=route, least_reply=LEAST_TEXT_FIRST)
        return call, guessed

    def record_keys(self, rec: Prepared) -> set[str]:
        """Every index key ``rec`` writes to (to tell which records a bad key refuses)."""
        vals = rec.vals
        out = set(self.outbox[:2]) if self.outbox is not None and not self.cluster else set()
        for ix in self.indexes:
            key = _render(ix.key, vals)
            if key is None:
                continue
            if ix.score is not None and vals[ix.score] is None:
                continue
            if ix.member is not None and vals[ix.member] is None:
                continue
            if ix.grid is not None and (vals[ix.grid[0]] is None or vals[ix.grid[1]] is None):
                continue
            out.add(key)
        return out

    def chunks(self, prepared: Sequence[Prepared], todo: Iterable[int]) -> Iterator[list[int]]:
        """Split ``todo`` into script calls (see :meth:`_chunks`); in cluster mode each
        call holds the records of one key scope (one agent: one slot), in order."""
        if not self.cluster:
            return self._chunks(prepared, todo)
        parts: dict[str, list[int]] = {}
        for j in todo:
            parts.setdefault(self._scope(prepared[j])[0], []).append(j)
        return (chunk for part in parts.values() for chunk in self._chunks(prepared, part))

    def _chunks(self, prepared: Sequence[Prepared], todo: Iterable[int]) -> Iterator[list[int]]:
        return split_calls([p.base for p in prepared], todo, self.batch_size,  # calls of
                           lambda j: self._scope(prepared[j]))  # at most batch_size records

    def _scope(self, rec: Prepared) -> tuple[str, str]:
        vals = rec.vals
        return (self.prefix.fmt % self.prefix.get(vals), self.suffix.fmt % self.suffix.get(vals))
