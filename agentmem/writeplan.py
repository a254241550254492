"""Plan writes for the write script (:data:`agentmem.scripts.WRITE`).

Two phases, so that bad input never reaches the server and the rest of the
client's work overlaps the server's:

1. :meth:`WritePlanner.prepare` validates and encodes every record (the only
   step that can fail on bad data) before anything is sent;
2. :meth:`WritePlanner.batch` renders each record's keys and groups its index
   entries per key, one script call per batch, built while the previous batch
   runs on the server.

The script checks every key it will touch, decides ids that are already taken
on the server, and then writes each hash and one variadic command per index key.

Arguments of one call: ``nrec ttl id_field stamp_field nscope``, then per scope
(the parts of record keys shared by records of one agent)
``key_prefix key_suffix probe_key``, then per record
``mode base id scope nh <nh hash args>``, then ``nprobe`` and
per probe key ``key n <n ids>``, then ``ngroup`` and per group ``code key n
<n args>``, where ``code`` is the index kind (``Z`` sorted set, ``S`` set,
``L`` list of record ids; ``z`` a sorted set of field values; ``h`` counters)
followed by the cap of a capped sorted set (``Z20``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agentmem.errors import InvalidId, InvalidInput
from agentmem.fields import FORBIDDEN, check_id
from agentmem.plan import Arg, Call, script_call
from agentmem.schema import (
    ID,
    CounterIndex,
    ListIndex,
    RecordSpec,
    SetIndex,
    SortedIndex,
    Template,
)
from agentmem.scripts import WRITE

M = TypeVar("M", bound=BaseModel)

GROUP_ARGS = 1000  # keeps every unpack() in the script far below Lua's stack limit
MAX_SCORE_INT = 2**53  # sorted-set scores are doubles


@dataclass(frozen=True)
class _Compiled:
    """A key template as a %-format string over positions of the encoded values."""

    fmt: str
    refs: tuple[int, ...]

    @classmethod
    def of(cls, template: Template, names: Sequence[str]) -> _Compiled:
        fmt = "".join(v.replace("%", "%%") if k == "L" else "%s" for k, v in template.parts)
        return cls(fmt, tuple(names.index(v) for k, v in template.parts if k == "F"))

    @property
    def get(self) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """The values the template needs, as a tuple (``operator.itemgetter``, in C)."""
        refs = self.refs
        if not refs:
            return lambda vals: ()
        if len(refs) == 1:
            i = refs[0]
            return lambda vals: (vals[i],)
        return itemgetter(*refs)


@dataclass(frozen=True)
class _Index:
    cmd: str
    type: str
    key: _Compiled
    score: int | None  # position of the score (zset) or counted field (hash)
    member: int | None  # position of the member field; None: the record id
    cap: int

    @property
    def code(self) -> str:
        """The group code the script reads: a kind letter, upper case when the
        members are record ids, then the cap of a capped sorted set."""
        letter = {"ZADD": "z", "SADD": "s", "RPUSH": "l", "HINCRBY": "h"}[self.cmd]
        if self.member is None and self.cmd != "HINCRBY":
            letter = letter.upper()
        return letter + (str(self.cap) if self.cap else "")


class Prepared:
    """One validated, encoded record."""

    __slots__ = ("base", "mode", "vals")

    def __init__(self, mode: str, base: str, vals: list[Arg | None]) -> None:
        self.mode = mode  # 'g': id generated from the template, 'f': given by the caller
        self.base = base
        self.vals = vals


class WritePlanner(Generic[M]):
    """Plans write-script calls for one declaration."""

    def __init__(self, spec: RecordSpec[M], *, batch_size: int = 500) -> None:
        self.spec = spec
        self.batch_size = batch_size
        codec = spec.codec
        names = codec.storage_names
        self.names = names
        self.id_pos = names.index(spec.id)
        stamp = codec.write_time_field
        self.stamp_name = stamp.storage[0] if stamp else ""
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
            else:
                member = None if ix.member == ID else names.index(ix.member)
                cmd, typ = ("SADD", "set") if isinstance(ix, SetIndex) else ("RPUSH", "list")
                assert isinstance(ix, (SetIndex, ListIndex))
                self.indexes.append(_Index(cmd, typ, key, None, member, 0))
        self._render_plan = [
            (ix, ix.key.fmt, len(ix.key.refs),
             ix.key.refs[0] if ix.key.refs else -1,
             ix.key.refs[1] if len(ix.key.refs) > 1 else -1,
             -1 if ix.score is None else ix.score,
             -1 if ix.member is None else ix.member)
            for ix in self.indexes
        ]
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

    # -- phase 1: validate and encode (may raise; nothing has been sent) ------

    def prepare(self, record: M) -> Prepared:
        spec = self.spec
        if not isinstance(record, spec.model):
            raise InvalidInput(f"expected a {spec.model.__name__}, got {type(record).__name__}")
        vals = spec.codec.encode(record)
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
        names = self.names
        scopes: dict[tuple[str, str, str], int] = {}
        recargs: list[Arg] = []
        groups: dict[str, list[Arg]] = {}
        meta: dict[str, _Index] = {}
        counters: dict[str, dict[Arg, int]] = {}
        zmembers: dict[str, dict[Arg, Arg]] = {}
        probes: dict[str, list[str]] = {}
        used: dict[str, int] = {}
        guessed: list[str] = []
        prefix_c, suffix_c, probe = self.prefix, self.suffix, self.probe
        hash_pos = [(i, names[i]) for i in self.hash_pos]
        plan = self._render_plan
        # ids given by the caller are reserved first, so no generated id takes one
        pfmt, pget, sfmt, sget = prefix_c.fmt, prefix_c.get, suffix_c.fmt, suffix_c.get
        kfmt, kget = (probe.fmt, probe.get) if probe is not None else ("", None)
        reserved = {
            pfmt % pget(r.vals) + r.base + sfmt % sget(r.vals) for r in records if r.mode == "f"
        }
        for rec in records:
            vals = rec.vals
            prefix = pfmt % pget(vals)
            suffix = sfmt % sget(vals)
            pkey = None
            if kget is not None:
                kvals = kget(vals)
                if None not in kvals:
                    pkey = kfmt % kvals
            rid = rec.base
            if rec.mode == "g":
                # ids repeated within the batch get .1, .2 here, skipping every id
                # another record of the batch has; the script redoes this for a
                # base with an id already taken on the server
                scope = prefix + rid + suffix
                n = used.get(scope, 0)
                while True:
                    rid = rec.base if n == 0 else f"{rec.base}.{n}"
                    n += 1
                    key = prefix + rid + suffix
                    if key not in reserved:
                        break
                used[scope] = n
                reserved.add(key)
            guessed.append(rid)
            if pkey is not None:
                probes.setdefault(pkey, []).append(rid)
            skey = (prefix, suffix, pkey or "")
            sno = scopes.get(skey)
            if sno is None:
                sno = scopes[skey] = len(scopes) + 1
            hargs: list[Arg] = []
            for i, name in hash_pos:
                v = vals[i]
                if v is not None:
                    hargs += (name, v)
            recargs += (rec.mode, rec.base, rid, sno, len(hargs))
            recargs += hargs
            for ix, fmt, nref, r0, r1, score, member in plan:
                if nref == 1:
                    v0 = vals[r0]
                    if v0 is None:
                        continue
                    key = fmt % v0
                elif nref == 2:
                    v0, v1 = vals[r0], vals[r1]
                    if v0 is None or v1 is None:
                        continue
                    key = fmt % (v0, v1)
                else:
                    key = _render(ix.key, vals)  # type: ignore[assignment]
                    if key is None:
                        continue
                m = rid if member < 0 else vals[member]
                if m is None:
                    continue
                cmd = ix.cmd
                if cmd == "ZADD":
                    sc = vals[score]
                    if sc is None:
                        continue
                    if member >= 0:  # field members repeat: keep one each
                        zmembers.setdefault(key, {})[m] = sc
                    else:
                        g = groups.get(key)
                        if g is None:
                            g = groups[key] = []
                            meta[key] = ix
                        g += (sc, m)
                    meta[key] = ix
                elif cmd == "HINCRBY":
                    f = vals[score]
                    if f is None:
                        continue
                    c = counters.get(key)
                    if c is None:
                        c = counters[key] = {}
                        meta[key] = ix
                    c[f] = c.get(f, 0) + 1
                else:
                    g = groups.get(key)
                    if g is None:
                        g = groups[key] = []
                        meta[key] = ix
                    g.append(m)
        argv: list[Arg] = [len(records), self.spec.ttl or 0, self.spec.id, self.stamp_name,
                           len(scopes)]
        for skey in scopes:
            argv += skey
        argv += recargs
        argv.append(len(probes))
        for pkey, ids in probes.items():
            argv += (pkey, len(ids))
            argv += ids
        for key, members in zmembers.items():
            flat = groups.setdefault(key, [])
            for m, sc in members.items():
                flat += (sc, m)
        for key, counts in counters.items():
            groups[key] = [x for f, c in counts.items() for x in (f, c)]
        chunks: list[tuple[str, _Index, list[Arg]]] = []
        step = GROUP_ARGS
        for key, flat in groups.items():
            ix = meta[key]
            if ix.cap and ix.cmd == "ZADD":
                flat = _top(flat, ix.cap)
            if len(flat) <= step:
                chunks.append((key, ix, flat))
            else:
                for start in range(0, len(flat), step):
                    chunks.append((key, ix, flat[start : start + step]))
        argv.append(len(chunks))
        for key, ix, flat in chunks:
            argv += (ix.code, key, len(flat))
            argv += flat
        return script_call(WRITE, argv), guessed

    def record_keys(self, rec: Prepared) -> set[str]:
        """Every index key ``rec`` writes to (to tell which records a bad key refuses)."""
        vals = rec.vals
        out = set()
        for ix in self.indexes:
            key = _render(ix.key, vals)
            if key is None:
                continue
            if ix.score is not None and vals[ix.score] is None:
                continue
            if ix.member is not None and vals[ix.member] is None:
                continue
            out.add(key)
        return out

    def chunks(self, prepared: Sequence[Prepared], todo: Iterable[int]) -> Iterator[list[int]]:
        """Split ``todo`` into script calls of at most ``batch_size`` records, cutting
        where two records of different scopes would share an id root (``k`` and
        ``k.1``): inside one call a bare id then names one record, which is what
        the script's renumbering relies on."""
        size = self.batch_size
        cur: list[int] = []
        roots: dict[str, int] = {}
        for j in todo:
            base = prepared[j].base
            head, dot, tail = base.rpartition(".")
            root = head if dot and tail.isdigit() else base
            first = roots.get(root)
            if len(cur) >= size or (first is not None
                                    and self._scope(prepared[first]) != self._scope(prepared[j])):
                yield cur
                cur, roots = [], {}
                first = None
            if first is None:
                roots[root] = j
            cur.append(j)
        if cur:
            yield cur

    def _scope(self, rec: Prepared) -> tuple[str, str]:
        vals = rec.vals
        return (self.prefix.fmt % self.prefix.get(vals), self.suffix.fmt % self.suffix.get(vals))


def _render(c: _Compiled, vals: Sequence[Arg | None]) -> str | None:
    """Render ``c`` from encoded values, or None when a value it needs is absent."""
    args = tuple(vals[i] for i in c.refs)
    if None in args:
        return None
    return c.fmt % args


def _split(parts: Sequence[tuple[Any, str]], field: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    i = list(parts).index(("F", field))
    return tuple(parts[:i]), tuple(parts[i + 1 :])


def _top(flat: list[Arg], cap: int) -> list[Arg]:
    """Of (score, member) pairs, drop those a cap of ``cap`` would trim at once.

    Keeps every pair scoring at least the cap-th highest score, so ties are left
    to the server's exact trim.
    """
    n = len(flat) // 2
    if n <= 2 * cap:
        return flat
    pairs = [(float(flat[2 * i]), flat[2 * i], flat[2 * i + 1]) for i in range(n)]
    threshold = sorted((p[0] for p in pairs), reverse=True)[cap - 1]
    return [x for s, raw, m in pairs if s >= threshold for x in (raw, m)]


@dataclass(frozen=True)
class BatchResult:
    """The script's answer for one batch."""

    written: bool
    stamp: int | None = None
    changed: dict[int, str] | None = None  # 0-based record -> id chosen on the server
    bad_keys: tuple[str, ...] = ()  # keys of a wrong type (nothing was written)
    conflicts: tuple[int, ...] = ()  # 0-based records whose given id exists (nothing written)


def parse_batch(reply: Sequence[Any]) -> BatchResult:
    items = [x.decode() if isinstance(x, bytes) else str(x) for x in reply]
    head = items[0]
    if head == "\x00WRONGTYPE":
        return BatchResult(False, bad_keys=tuple(items[1:]))
    if head == "\x00EXISTS":
        return BatchResult(False, conflicts=tuple(int(x) - 1 for x in items[1:]))
    changed = {int(items[i]) - 1: items[i + 1] for i in range(1, len(items), 2)}
    return BatchResult(True, int(head) if head else None, changed)
