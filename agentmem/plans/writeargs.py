"""The write script's arguments: compiled key templates and index emitters, and the
grouping of index entries per key, the split into calls (pure; used by
:mod:`agentmem.plans.write`).

Arguments of one call, sent as one MessagePack array (:func:`pack`): ``nrec ttl
id_field stamp_field nscope``, then per scope (the parts of record keys shared by
records of one agent) ``key_prefix key_suffix probe_key retired_key moved_prefix
moved_suffix`` (the last two: the key, around the id, of a record that left and lives
on elsewhere, :attr:`~agentmem.model.schema.Retired.moved_to`, else empty), then per record
``mode base id scope retired_scope retired_order nh <nh hash args>`` (the retired
pair: the record's scope and order values when its id is generated and the declaration
has :class:`~agentmem.model.schema.Retired`, else two empty strings), then ``nprobe``
and per probe key ``key n <n ids>``, then ``ngroup`` and per group ``code key n <n
args>``, where ``code`` is the index kind (``Z`` sorted set, ``S`` set, ``L`` list of
record ids; ``z`` a sorted set of field values; ``h`` counters) followed by the cap of
a capped sorted set (``Z20``). A planner given an outbox
(:meth:`~agentmem.plans.write.WritePlanner.with_outbox`) adds a last group ``O outbox
3 registry lease_key lease_ms``: the script appends every record's key to the outbox
list; with the dual writer's marker, ``O outbox 5 registry lease_key lease_ms marker
token``: the script first checks that ``marker`` holds ``token`` and otherwise writes
nothing (:func:`outbox_group`).

Counts go as integers; every value the script passes on to a command goes as the
text the server stores.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgpack  # type: ignore[import-untyped]

from agentmem.errors import ConfigError
from agentmem.model.codec import _enc_float, _enc_int
from agentmem.model.generated import run_source
from agentmem.model.schema import (
    Template,
)
from agentmem.plans.grid import code as grid_code
from agentmem.plans.plan import Arg

KEY_CACHE = 1 << 13
"""Index keys an emitter remembers per index, by the values they are made of (8,192: a
few MB at most for a declaration's indexes); keys of other values are rendered per
call, as before."""
GROUP_ARGS = 1000  # keeps every unpack() in the script far below Lua's stack limit
MAX_SCORE_INT = 2**53  # sorted-set scores are doubles

Marker = Callable[[], "tuple[str, str] | None"]
"""Gives the dual writer's retired-marks marker (key, token) as of now, or None."""


def outbox_group(outbox: tuple[str, str, str, int], marker: Marker | None) -> tuple[Arg, ...]:
    """The write script's group ``O``: the outbox, its registry and lease; and, when the
    writer's marker is known, the marker key and its token: the script refuses the whole
    call (``\0UNSEEDED``, nothing written) when the marker is missing or holds another
    token, i.e. Redis lost the retired marks since the writer seeded them (a flush, an
    eviction, a restart) or another writer seeded them again (``docs/durability.md``)."""
    key, registry, lease_key, lease_ms = outbox
    m = marker() if marker is not None else None
    if m is None:
        return ("O", key, 3, registry, lease_key, str(lease_ms))
    return ("O", key, 5, registry, lease_key, str(lease_ms), m[0], m[1])

def pack(argv: Sequence[Arg]) -> bytes:
    """The write script's one argument: ``argv`` as one MessagePack array.

    Strings and bytes go as MessagePack raw strings (the format the ``cmsgpack``
    library of Redis's and Valkey's Lua reads), integers as integers: the script
    reads its counts as numbers and passes every other value on as the string it
    came as. One argument instead of about 64 per record: the client packs the call
    in a few percent of the time hiredis takes per argument, and the server reads it
    without making an object of each (``benchmarks/argformat.py``)."""
    packed: bytes = msgpack.packb(argv, use_bin_type=False)
    return packed


def text(v: Any) -> Arg:
    """A value as the text the server stores (floats as ``repr`` writes them)."""
    return v if isinstance(v, (str, bytes)) else repr(v) if isinstance(v, float) else str(v)


def number_texts(encoders: Sequence[Callable[[Any], Any]]) -> dict[int, str]:
    """Of the encoders of a declaration's stored values, the positions of int and float
    values and the function that writes each as text (``str``, ``repr``)."""
    names = {_enc_int: "str", _enc_float: "repr"}
    return {i: names[enc] for i, enc in enumerate(encoders) if enc in names}


@dataclass(frozen=True)
class _Compiled:
    """A key template as a %-format string over positions of the encoded values."""

    fmt: str
    refs: tuple[int, ...]

    @classmethod
    def of(cls, template: Template, names: Sequence[str]) -> _Compiled:
        fmt = "".join(v.replace("%", "%%") if k == "L" else "%s" for k, v in template.parts)
        return cls(fmt, tuple(names.index(v) for k, v in template.parts if k == "F"))

    @functools.cached_property
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
    grid: tuple[int, int, float] | None = None
    """A grid index: the positions of its x and y fields and its cell size (the
    score is the Z-order code of the cell, :func:`agentmem.plans.grid.code`)."""

    @functools.cached_property
    def code(self) -> str:
        """The group code the script reads: a kind letter, upper case when the
        members are record ids, then the cap of a capped sorted set."""
        letter = {"ZADD": "z", "SADD": "s", "RPUSH": "l", "HINCRBY": "h"}[self.cmd]
        if self.member is None and self.cmd != "HINCRBY":
            letter = letter.upper()
        return letter + (str(self.cap) if self.cap else "")


Emit = Callable[[list[tuple[list[Arg | None], str, tuple[Arg, ...]]], list[Arg],
                  dict[str, list[Arg]], dict[str, _Index], dict[str, dict[Arg, int]],
                  dict[str, dict[Arg, Arg]]], None]


def _compile_emit(hash_pos: Sequence[tuple[int, str]], indexes: Sequence[_Index],
                  exact: set[int], texts: dict[int, str]) -> Emit:
    """Generate straight-line code that adds each record's arguments to ``recargs``
    and its index entries to the groups: one block per index, no per-index dispatch.

    ``emit(items, recargs, groups, meta, counters, zmembers)``, ``items`` being
    ``(vals, rid, head)`` per record: ``head`` and the record's hash arguments go
    to ``recargs``. Absent values are skipped as :func:`_render` skips them; a
    sorted set whose members are field values keeps one score per member
    (``zmembers``), counters count per field value (``counters``), every other
    group lists its arguments in record order. Within one call, the group of an
    index is looked up by the values its key is made of when those are str or
    int fields (``exact``: equal values render equal keys), so a key is
    rendered once per call rather than once per record.

    Every value the script passes on to a command goes as text: ``texts`` names the
    function (``str`` or ``repr``) that writes the value of each int or float
    position as the server stores it (what hiredis wrote before, :func:`pack`);
    scores are written the same way, so that the server parses them once and never
    formats a number.
    """
    env: dict[str, Any] = {}
    head = ["def emit(items, recargs, groups, meta, counters, zmembers):"]
    lines = ["    for vals, rid, hd in items:", "        recargs += hd", "        h = []"]
    # the text of each number the record sends, made once (a step is a hash value and
    # a score of several indexes)
    used = {i for i, _ in hash_pos} | {p for ix in indexes for p in (ix.member, ix.score)
                                       if p is not None}
    for i in sorted(used & set(texts)):
        lines += [f"        t{i} = vals[{i}]",
                  f"        if t{i} is not None: t{i} = {texts[i]}(t{i})"]

    def val(i: int) -> str:
        return f"t{i}" if i in texts else f"vals[{i}]"

    for i, name in hash_pos:
        lines += [f"        v = {val(i)}", "        if v is not None:",
                  f"            h += ({name!r}, v)"]
    lines += ["        recargs.append(len(h))", "        recargs += h"]
    # each grid's code once per record (an index at the agent and one at the step share it)
    grids: dict[tuple[int, int, float], str] = {}
    for ix in indexes:
        if ix.grid is not None and ix.grid not in grids:
            name = grids[ix.grid] = f"gc{len(grids)}"
            xi, yi, cell = ix.grid
            env[f"{name}_code"] = grid_code
            lines += [f"        gx = vals[{xi}]", f"        gy = vals[{yi}]",
                      f"        {name} = None if gx is None or gy is None else "
                      f"str({name}_code(gx, gy, {cell!r}))"]
    for n, ix in enumerate(indexes):
        env[f"IX{n}"] = ix
        refs = ix.key.refs
        need = [f"a{k}" for k in range(len(refs))]
        lines += [f"        a{k} = vals[{r}]" for k, r in enumerate(refs)]
        if ix.member is not None:
            lines.append(f"        m = {val(ix.member)}")
            need.append("m")
        else:
            lines.append("        m = rid")
        if ix.score is not None:
            lines.append(f"        sc = {val(ix.score)}")
            need.append("sc")
        if ix.grid is not None:
            lines.append(f"        sc = {grids[ix.grid]}")
            need.append("sc")
        cond = " and ".join(f"{x} is not None" for x in need) if need else "True"
        lines.append(f"        if {cond}:")
        if not refs:
            env[f"K{n}"] = ix.key.fmt % ()
            render = f"K{n}"
        else:
            env[f"F{n}"] = ix.key.fmt
            render = f"F{n} % " + ("a0" if len(refs) == 1 else "(" + ", ".join(need[:len(refs)])
                                   + ")")
        if ix.cmd == "ZADD" and ix.member is not None:
            store, kind, add = "zmembers", "{}", "g[m] = sc"
        elif ix.cmd == "ZADD":
            store, kind, add = "groups", "[]", "g += (sc, m)"
        elif ix.cmd == "HINCRBY":
            store, kind, add = "counters", "{}", "g[sc] = g.get(sc, 0) + 1"
        else:
            store, kind, add = "groups", "[]", "g.append(m)"
        # the group of this record, created (and its index noted) when new
        find = [f"key = {render}",
                f"g = {store}.get(key)",
                "if g is None:",
                f"    g = {store}[key] = {kind}",
                f"    meta[key] = IX{n}"]
        if ix.cmd == "ZADD":  # a sorted set's group notes its index each time
            find[-1:] = [f"meta[key] = IX{n}"]
        if not refs:
            # one key per call: its group is found once
            head.append(f"    g{n} = None")
            lines += [f"            if g{n} is None:"]
            lines += ["                " + x for x in find]
            lines += [f"                g{n} = g", f"            g = g{n}"]
        elif all(r in exact for r in refs):
            # the key is also remembered across calls (a simulation's agents write
            # every step): rendered once per value, not once per call
            ck = "a0" if len(refs) == 1 else "(" + ", ".join(need[:len(refs)]) + ")"
            head.append(f"    c{n} = {{}}")
            env[f"K{n}"] = {}
            find[0:1] = [f"key = K{n}.get({ck})", "if key is None:",
                         f"    key = {render}",
                         f"    if len(K{n}) < {KEY_CACHE}: K{n}[{ck}] = key"]
            lines += [f"            g = c{n}.get({ck})", "            if g is None:"]
            lines += ["                " + x for x in find]
            lines += [f"                c{n}[{ck}] = g"]
        else:
            lines += ["            " + x for x in find]
        lines.append(f"            {add}")
    run_source(head + lines, env)  # source built above from the declaration
    emit: Emit = env["emit"]
    return emit


def _merge_groups(groups: dict[str, list[Arg]], counters: dict[str, dict[Arg, int]],
                  zmembers: dict[str, dict[Arg, Arg]]) -> None:
    """Add the sorted sets of field values and the counters to ``groups``."""
    for key, members in zmembers.items():
        flat = groups.setdefault(key, [])
        for m, sc in members.items():
            flat += (sc, m)
    for key, counts in counters.items():
        groups[key] = [x for f, c in counts.items() for x in (f, str(c))]


def _append_groups(argv: list[Arg], groups: dict[str, list[Arg]],
                   meta: dict[str, _Index]) -> None:
    """Append ``ngroup`` and each group (``code key n <n args>``) to ``argv``."""
    at = len(argv)
    argv.append(0)  # the number of groups, known below
    ngroup = 0
    step = GROUP_ARGS
    for key, flat in groups.items():
        ix = meta[key]
        if ix.cap and len(flat) > 4 * ix.cap and ix.cmd == "ZADD":
            flat = _top(flat, ix.cap)
        n = len(flat)
        if n <= step:
            argv += (ix.code, key, n)
            argv += flat
            ngroup += 1
        else:
            for start in range(0, n, step):
                part = flat[start : start + step]
                argv += (ix.code, key, len(part))
                argv += part
                ngroup += 1
    argv[at] = ngroup


def split_slots(spec: Any, indexes: list[_Index]) -> tuple[list[_Index], list[_Index]]:
    """Cluster mode: ``indexes`` (those of ``spec``, in order) split into those in the
    record's slot (their key's hash tag is the record key's) and the others."""
    own = _tag_field(Template.parse(spec.key.pattern))
    if own is None:
        raise ConfigError(
            f"{spec.model.__name__}'s key {spec.key.pattern!r} has no hash tag: on a Redis "
            "Cluster each record's keys must share a slot (use key layout 2)")
    local: list[_Index] = []
    remote: list[_Index] = []
    for ix, decl in zip(indexes, spec.indexes, strict=True):
        tag = _tag_field(Template.parse(decl.key))
        if tag is None:
            raise ConfigError(f"index {decl.name!r} ({decl.key!r}) has no hash tag: on a "
                              "Redis Cluster every key needs one (use key layout 2)")
        if tag == own:
            local.append(ix)
        else:
            if decl.name == spec.unique_in:
                raise ConfigError(f"index {decl.name!r} decides ids and must share the "
                                  "record's slot")
            remote.append(ix)
    return local, remote


def _tag_field(template: Template) -> str | None:
    """The field a key pattern's Redis Cluster hash tag is made of (``agent:{{{agent_id}}}:...``
    gives ``agent_id``), or None when its tag is not exactly one field (or it has none)."""
    parts = template.parts
    for n, (kind, text) in enumerate(parts):
        if kind == "L" and "{" in text:
            if (text.endswith("{") and text.index("{") == len(text) - 1 and n + 2 < len(parts)
                    and parts[n + 1][0] == "F" and parts[n + 2][0] == "L"
                    and parts[n + 2][1].startswith("}")):
                return parts[n + 1][1]
            return None
    return None


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


def split_calls(bases: Sequence[str], todo: Iterable[int], size: int,
                scope_of: Callable[[int], Any]) -> Iterator[list[int]]:
    """Split ``todo`` (positions in ``bases``, the records' id bases) into script calls of
    at most ``size`` records, cutting where two records of different scopes
    (``scope_of``) would share an id root (``k`` and ``k.1``): inside one call a bare id
    then names one record, which is what the script's renumbering relies on."""
    cur: list[int] = []
    roots: dict[str, int] = {}
    for j in todo:
        base = bases[j]
        head, dot, tail = base.rpartition(".")
        root = head if dot and tail.isdigit() else base
        first = roots.get(root)
        if len(cur) >= size or (first is not None and scope_of(first) != scope_of(j)):
            yield cur
            cur, roots = [], {}
            first = None
        if first is None:
            roots[root] = j
        cur.append(j)
    if cur:
        yield cur
