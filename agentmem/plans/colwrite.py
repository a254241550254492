"""Write calls that send columns and let the server build the records' keys (pure).

:meth:`WritePlanner.batch <agentmem.plans.write.WritePlanner.batch>` renders every
record's keys and groups its index entries per key in Python: about 8 µs of client CPU
per AgentFarm-shaped action, most of what ``add_rows`` / ``add_columns`` cost (issue
19, item 3). :class:`ColumnBatcher` sends the same call as columns instead: one list
per stored value (as the text the server stores), the key templates once per call, and
``core/write_cols.lua`` builds on the server the arguments ``core/write.lua`` reads,
then runs the same checks and writes (``lib/write_body.lua``). The client's work per
record is a few C-level passes over each column; the server's grows by the rendering
(``docs/performance.md``). Records held as columns (``add_columns``:
:class:`~agentmem.plans.colplan.ColumnRows`) go from slices of the columns, their
numbers made text once per write, a column at a time
(:func:`~agentmem.plans.numtext.column_texts`, :meth:`ColumnBatcher.batch_of`); the
keys and the record keys' parts are remembered across writes, shared by the threads
writing through one store.

It takes a call only when it can state it so, and gives ``None`` otherwise (the caller
then uses ``WritePlanner.batch``): every id generated and distinct within its scope
(the ids sent are then the ones ``batch`` guesses), the values the record's scope is
made of present, not a cluster, and key templates made of str and int
fields only. Same reply, same stored data (``tests/integration/test_write_cols.py``
compares them key by key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from agentmem.lua.scripts import WRITE_COLS
from agentmem.model.codec import _enc_int, _enc_str
from agentmem.model.keyshape import may_coincide, segments
from agentmem.model.schema import Template
from agentmem.plans.colplan import ColumnRows
from agentmem.plans.grid import _SPREAD13, OFFSET, TOP
from agentmem.plans.grid import code as cell_code
from agentmem.plans.numtext import column_texts
from agentmem.plans.plan import LEAST_TEXT_FIRST, Call, script_call
from agentmem.plans.wirepack import Packed, packb, packed_texts, raw
from agentmem.plans.write import Prepared, WritePlanner
from agentmem.plans.writeargs import KEY_CACHE, _Compiled, _split, number_texts, outbox_group

__all__ = ["GRID_LOOP_MAX", "MIN_RECORDS", "PACK_MIN", "ColumnBatcher", "grid_codes"]

MIN_RECORDS = 32
"""A write of fewer records goes as rows: the column script's cost per call (its plan
unpacked, its tables built) outweighs what columns save below about this many
(``docs/performance.md``, "Write calls as columns")."""

PACK_MIN = 512
"""A write of at least this many records sends its number columns packed a whole column
at a time (:func:`~agentmem.plans.wirepack.packed_texts`: numpy passes, some 30 µs a
column whatever its length); a smaller one, the texts of
:func:`~agentmem.plans.numtext.column_texts`, which ``msgpack`` packs one by one (about
0.1 µs each): below a few hundred values, the cheaper of the two (``docs/performance.md``,
"Small writes as columns")."""

GRID_LOOP_MAX = 128
""":func:`grid_codes` of at most this many positions runs :func:`agentmem.plans.grid.code`
on each (about 1 µs each); of more, numpy passes over the whole columns (some 60 µs
whatever their length)."""

_SPREAD = np.asarray(_SPREAD13, dtype=np.int64)


def grid_codes(xs: Sequence[float | None], ys: Sequence[float | None], cell: float,
               present: bool = False, pack: bool = False) -> Any:
    """:func:`agentmem.plans.grid.code` of every position, as text or its ASCII bytes
    (None where x or y is None), computed on whole columns: the same floats, the same
    comparisons. ``present``: the caller knows every x and y is present; ``pack``: a
    :class:`~agentmem.plans.wirepack.Packed` column then, where it can be."""
    n = len(xs)
    if n <= GRID_LOOP_MAX:
        return [None if x is None or y is None else str(cell_code(x, y, cell))
                for x, y in zip(xs, ys, strict=True)]
    have = [i for i in range(n) if xs[i] is not None and ys[i] is not None] \
        if not present and (None in xs or None in ys) else None
    if have is None:
        q = np.array((xs, ys), dtype=np.float64)
    else:
        q = np.array(([xs[i] for i in have], [ys[i] for i in have]), dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):  # a quotient beyond the grid
        q /= cell
    # beyond the grid (an infinite quotient too): the edge cell; else floor + offset,
    # clamped
    c = np.clip(np.floor(np.clip(q, -OFFSET - 1.0, OFFSET + 1.0)) + OFFSET, 0, TOP
                ).astype(np.int64)
    c = _SPREAD[c & 8191] | _SPREAD[c >> 13] << 26
    codes: list[int] = (c[0] | c[1] << 1).tolist()
    if have is None:
        return (pack and packed_texts(codes, str)) or column_texts(codes, str)
    out: list[str | bytes | None] = [None] * n
    for i, code in zip(have, codes, strict=True):
        out[i] = str(code)
    return out


class ColumnBatcher:
    """Write-script calls as columns, for one :class:`WritePlanner` (see the module)."""

    def __init__(self, planner: WritePlanner[Any]) -> None:
        self.planner = planner
        names = planner.names
        codec = planner.spec.codec
        exact = {i for i, n in enumerate(names)
                 if codec.field_for(n).encode in (_enc_str, _enc_int)}
        self.ok = not planner.cluster and planner.id_template is not None
        if not self.ok:  # (on a cluster, planner.indexes holds only the record's slot's)
            return
        # the columns sent: every stored value but the id and the write time, then one
        # column of grid codes per grid; Lua's column numbers start at 1
        col: dict[int, int] = {}

        def c(pos: int) -> int:
            if pos not in col:
                col[pos] = len(col) + 1
            return col[pos]

        def tpl(parts: Sequence[tuple[str, str]]) -> list[Any]:
            """A template's parts as Lua reads them: literal text at odd places, column
            numbers at even ones (an empty literal between two fields, at either end)."""
            out: list[Any] = [""]
            for kind, v in parts:
                if kind == "L":
                    out[-1] += v
                else:
                    pos = names.index(v)
                    if pos not in exact:
                        self.ok = False
                    out += (c(pos), "")
            return out

        hash_args: list[Any] = []
        for i in planner.hash_pos:
            hash_args += (c(i), codec.wire(names[i]))
        spec = planner.spec
        prefix, suffix = (tpl(part) for part in _split(spec.key.parts, spec.id))
        probe: Any = False
        decls = {ix.name: ix for ix in spec.indexes}
        if planner.probe is not None and spec.unique_in is not None:
            probe = tpl(Template.parse(decls[spec.unique_in].key).parts)
        retired: Any = False
        moved: tuple[Any, Any] = (False, False)
        rs_col = ro_col = 0
        if spec.retired is not None:
            retired = tpl(Template.parse(spec.retired.key).parts)
            rs_col, ro_col = c(names.index(spec.retired.scope)), c(names.index(
                spec.retired.order))
            if spec.retired.moved_to is not None:
                mp, ms = _split(Template.parse(spec.retired.moved_to).parts, spec.id)
                moved = (tpl(mp), tpl(ms))
        scope_pos = sorted({*planner.prefix.refs, *planner.suffix.refs,
                            *(planner.probe.refs if planner.probe is not None else ()),
                            *(planner.retired.refs if planner.retired is not None else ()),
                            *(r for m in planner.moved or () for r in m.refs)})
        self.scope_pos = scope_pos
        self._segmented = spec.id_template is not None and all(
            ":" not in v for kind, v in Template.parse(spec.id_template).parts
            if kind == "L") and all(sum(kind == "F" for kind, _ in seg) <= 1
                                    for seg in segments(spec.key.parts))
        """Whether the record key holds each of its values and the (generated) id alone
        in a ``:``-segment, none of them holding a ``:`` (then the key differs wherever
        the id does)."""
        self.key_pos = sorted({*planner.prefix.refs, *planner.suffix.refs})
        self._prefix, self._suffix = planner.prefix, planner.suffix
        self._around: dict[Any, tuple[str, str]] = {}
        """The record key's text before and after the id, by the values it is made of."""
        indexes: list[Any] = []
        grids: list[tuple[int, int, float]] = []
        self._ikeys: list[tuple[_Compiled, dict[Any, str], list[Any], tuple[int, ...]]] = []
        """Per index: its key template, its keys by the values they are made of, its
        template as the script reads templates, and the positions of its values each
        alone in a ``:``-segment of it (a key differs wherever one of those does)."""
        for ix, decl in zip(planner.indexes, spec.indexes, strict=True):
            # str and int fields only: the server renders it as the client would
            kparts = Template.parse(decl.key).parts
            alone = tuple(sorted({names.index(fs[0]) for seg in segments(kparts)
                                  if len(fs := [v for kind, v in seg if kind == "F"]) == 1}))
            self._ikeys.append((ix.key, {}, tpl(kparts), alone))
            member = 0 if ix.member is None or ix.cmd == "HINCRBY" else c(ix.member)
            score = 0
            if ix.grid is not None:
                if ix.grid not in grids:
                    grids.append(ix.grid)
                score = -1 - grids.index(ix.grid)  # a grid's column, numbered below
            elif ix.score is not None:
                score = c(ix.score)
            if ix.cmd == "ZADD":
                kind = "Z" if ix.member is None else "z"
            elif ix.cmd == "HINCRBY":
                kind = "h"
            else:
                kind = "A"
            indexes.append([ix.code, 0, score, member, kind])
        self._refs = sorted({p for key, *_ in self._ikeys for p in key.refs})
        """The positions of the values index keys are made of."""
        # what add_many's grouping does that the column script does not: a capped sorted
        # set of field values trimmed in the client (_top) before an old member's score
        # could change, and one group for two indexes of one key
        ints = {n for n in names if codec.field_for(n).encode is _enc_int}
        parts = [Template.parse(decl.key).parts for decl in spec.indexes]
        if any(ix.cap and ix.member is not None for ix in planner.indexes) or any(
                may_coincide(parts[i], parts[j], ints)
                for i in range(len(parts)) for j in range(i + 1, len(parts))):
            self.ok = False
        self.positions = [p for p, _ in sorted(col.items(), key=lambda kv: kv[1])]
        self.grids = grids
        ncol = len(self.positions)
        for entry in indexes:
            if entry[2] < 0:
                entry[2] = ncol + (-1 - entry[2]) + 1
        self.texts = {i: (str if name == "str" else repr) for i, name in number_texts(
            [codec.field_for(n).encode for n in names]).items()}
        self.plan: list[Any] = [
            planner.id_field, planner.stamp_field, hash_args, prefix, suffix, probe, retired,
            rs_col, ro_col, moved[0], moved[1], [c(p) for p in scope_pos], indexes]
        self.ttl = str(planner.spec.ttl or 0)
        self.head = raw(self.plan)  # (packed once: the same in every call)
        self._outbox, self._marker = planner.outbox, planner.marker

    def takes(self, records: Sequence[Prepared]) -> bool:
        """Whether every call of a write of ``records`` can go as columns: decided once
        per write, so that its calls run one script (a call refused with ``NOSCRIPT`` runs
        again after the others; with one script, all of them do, in order)."""
        if not self.ok or len(records) < MIN_RECORDS:
            return False
        if {r.mode for r in records} != {"g"}:
            return False
        rows = [r.vals for r in records]
        return self._takes(lambda p: list(map(itemgetter(p), rows)),
                           [r.base for r in records])

    def _takes(self, column: Callable[[int], Sequence[Any]], bases: Sequence[str],
               absent: Sequence[bool | None] | None = None, unique: bool | None = None
               ) -> bool:
        """:meth:`takes` of records whose stored values at ``p`` are ``column(p)``
        (``absent``: whether each holds a None, where known; ``unique``: whether the
        bases are distinct, where known)."""
        n = len(bases)
        if unique is None:
            unique = len(set(bases)) == n
        for p in self.scope_pos:
            some = absent[p] if absent is not None else None
            if some or (some is None and None in column(p)):
                return False
        # distinct record keys: batch() guesses each record its base, in any call. With
        # every value and the id alone in a ':'-segment of the key (none holds a ':'),
        # distinct ids are distinct keys
        if self._segmented and unique:
            return True
        keyvals: list[Any] = list(zip(*(column(p) for p in self.key_pos), strict=True)) \
            if self.key_pos else [()] * n
        # remembered across writes up to KEY_CACHE values, never forgotten (the store may
        # be shared by threads: what one looked up stays there)
        around = self._around
        here: dict[Any, tuple[str, str]] = {}
        for v in dict.fromkeys(keyvals):
            got1 = around.get(v)
            if got1 is None:
                vals = dict(zip(self.key_pos, v, strict=True))
                got1 = (self._prefix.fmt % tuple(vals[r] for r in self._prefix.refs),
                        self._suffix.fmt % tuple(vals[r] for r in self._suffix.refs))
                if len(around) < KEY_CACHE:
                    around[v] = got1
            here[v] = got1
        if len(here) == 1:  # one scope: distinct keys are distinct bases
            return unique
        got = list(map(here.__getitem__, keyvals))
        keys = set(map(str.__add__, map(str.__add__, map(itemgetter(0), got), bases),
                       map(itemgetter(1), got)))
        return len(keys) == n

    def chunks(self, prepared: Sequence[Prepared], todo: Sequence[int]
               ) -> list[list[int]] | None:
        """The calls of a write of ``prepared[j]`` for ``j`` in ``todo`` as columns (see
        :meth:`takes`), or None. Cut as ``WritePlanner.chunks`` cuts them: every
        ``batch_size`` records, and where two records of different scopes share an id root
        (``k`` and ``k.1``), which distinct ids without a dot never do."""
        bases: Sequence[str]
        if type(prepared) is ColumnRows and len(todo) == len(prepared):  # the whole write
            cols = prepared.cols
            if not self.ok or len(todo) < MIN_RECORDS or prepared.mode != "g":
                return None
            bases = prepared.bases
            plain = prepared.plain
            unique = plain or len(set(bases)) == len(bases)
            if not self._takes(cols.__getitem__, bases, prepared.absent, unique):
                return None
            if plain:
                size = self.planner.batch_size
                return [list(todo[i:i + size]) for i in range(0, len(todo), size)]
        else:
            records = [prepared[j] for j in todo]
            if not self.takes(records):
                return None
            bases = [r.base for r in records]
            unique = len(set(bases)) == len(bases)
        if not unique or "." in "".join(bases):
            return list(self.planner.chunks(prepared, todo))
        size = self.planner.batch_size
        return [list(todo[i:i + size]) for i in range(0, len(todo), size)]

    def batch_of(self, prepared: Sequence[Prepared], batch: Sequence[int]
                 ) -> tuple[Call, list[str]]:
        """:meth:`batch` of ``prepared[j]`` for ``j`` in ``batch`` (a call of
        :meth:`chunks`). Of records held as columns (:class:`ColumnRows`), a run of them
        goes from slices of the columns: each column is made text once per write."""
        if type(prepared) is ColumnRows:
            a, b = batch[0], batch[-1] + 1
            if b - a == len(batch):
                wire = prepared.wire
                if wire is None:
                    wire = prepared.wire = self._wire(prepared.cols, len(prepared),
                                                      prepared.absent)
                sent: list[Any] = []
                for w, absent in wire:
                    if type(w) is Packed:
                        w = w.part(a, b)
                    elif w is not False:
                        w = w[a:b]
                        if absent and w.count(None) == b - a:
                            w = False
                    sent.append(w)
                cols = prepared.cols
                need: list[Any] = [None] * len(cols)
                for p in self._refs:
                    need[p] = cols[p][a:b]
                return self._call(b - a, prepared.bases[a:b], need, sent)
        return self.batch([prepared[j] for j in batch])

    def batch(self, records: Sequence[Prepared]) -> tuple[Call, list[str]]:
        """One script call for ``records``, a call of :meth:`chunks`, and the ids they get
        unless the server finds them taken (as :meth:`WritePlanner.batch` guesses them)."""
        n = len(records)
        cols = list(zip(*[r.vals for r in records], strict=True))
        return self._call(n, [r.base for r in records], cols,
                          [w.part(0, n) if type(w) is Packed else w
                           for w, _ in self._wire(cols, n)])

    def _wire(self, cols: Sequence[Sequence[Any]], n: int,
              absent: Sequence[bool | None] | None = None) -> list[tuple[Any, bool]]:
        """The columns sent, as the server stores them (texts of numbers, the grids'
        codes; a column of numbers with none absent :class:`Packed` where it can be),
        each with whether it holds an absent value; False: none present. ``absent``: per
        column, whether it holds one, where known (else looked for)."""
        texts = self.texts
        out: list[tuple[Any, bool]] = []
        for p in self.positions:
            col = cols[p]
            fn = texts.get(p)
            some = absent[p] if absent is not None else None
            if some is None:
                some = None in col
            if some:
                if col.count(None) == n:
                    out.append((False, True))
                    continue
                out.append((col if fn is None else
                            [None if v is None else fn(v) for v in col], True))
            elif fn is None:
                out.append((col, False))
            else:
                out.append(((n >= PACK_MIN and packed_texts(col, fn)) or column_texts(col, fn),
                            False))
        for xi, yi, cell in self.grids:
            present = absent is not None and absent[xi] is False and absent[yi] is False
            codes = grid_codes(cols[xi], cols[yi], cell, present, n >= PACK_MIN)
            out.append((codes, not present and type(codes) is not Packed and None in codes))
        return out

    def _call(self, n: int, bases: Sequence[str], cols: Sequence[Sequence[Any] | None],
              wire: list[Any]) -> tuple[Call, list[str]]:
        """The call of ``n`` records: ``cols`` their stored values (those index keys are
        made of, at least), ``wire`` the columns sent."""
        memo: dict[Any, Any] = {}
        keys = [self._keys(k, cols, n, memo) for k in range(len(self._ikeys))]
        # as writeargs.pack: str and bytes as MessagePack raw strings, counts as integers
        ob: Any = False  # the dual writer's outbox (outbox_group without 'O' and n)
        if self._outbox is not None:
            group = outbox_group(self._outbox, self._marker)
            ob = [group[1], *group[3:]]
        arg = packb([self.head, n, self.ttl, "g", bases, False, wire, keys, ob], 6)
        return script_call(WRITE_COLS, [arg], least_reply=LEAST_TEXT_FIRST), list(bases)

    def _keys(self, k: int, cols: Sequence[Sequence[Any] | None], n: int,
              memo: dict[Any, Any]) -> list[Any]:
        """Index ``k``'s key of each record, as the script reads them: ``[keys, codes]``,
        the distinct keys and each record's (1-based, 0: a value the key needs is
        absent); ``[template, False]`` when every record has a key of its own or none
        (the server renders them from the columns: one of the values, alone in its
        ``:``-segment, differs in every record), ``[keys, True]`` when they all have the
        one key. Rendered as :meth:`WritePlanner.batch` renders them (the same values,
        the same format), remembered across calls by the values they are made of.
        ``memo``: what the call's other indexes learnt of the same columns."""
        compiled, cache, tpl, alone = self._ikeys[k]
        refs = compiled.refs
        if not refs:
            return [[compiled.fmt % ()], True]
        form = (refs, alone)  # indexes whose keys are made of the same values, alike,
        got = memo.get(form)  # share it
        if got is None:
            got = False
            for p in alone:  # one value alone in its segment, different in every record
                st = memo.get(p)
                if st is None:
                    st = memo[p] = set(cols[p])  # type: ignore[arg-type]
                if len(st) == n:
                    break
            else:
                stats = []  # per column: its distinct values (None among them)
                for p in refs:
                    st = memo.get(p)
                    if st is None:
                        st = memo[p] = set(cols[p])  # type: ignore[arg-type]
                    stats.append(st)
                if all(len(st) == 1 and None not in st for st in stats):
                    got = True
                else:
                    parts: list[Sequence[Any]] = [cols[p] for p in refs]  # type: ignore[misc]
                    vals = parts[0] if len(refs) == 1 else list(zip(*parts, strict=True))
                    got = (vals, any(None in st for st in stats), list(dict.fromkeys(vals)))
            memo[form] = got
        if got is False:
            return [tpl, False]
        if got is True:  # the one key: rendered once per run
            one = [next(iter(memo[p])) for p in refs]
            v = one[0] if len(refs) == 1 else tuple(one)
            key = cache.get(v)
            if key is None:
                key = compiled.fmt % tuple(one)
                if len(cache) < KEY_CACHE:
                    cache[v] = key
            return [[key], True]
        vals, absent, order = got
        if absent:
            order = [v for v in order if v is not None and not (
                type(v) is tuple and None in v)]
        try:
            keys = list(map(cache.__getitem__, order))
        except KeyError:  # values new to this index: rendered, and remembered while the
            fmt = compiled.fmt  # cache has room (never forgotten: threads may share it)
            keys = []
            for v in order:
                key = cache.get(v)
                if key is None:
                    key = fmt % (v if len(refs) > 1 else (v,))
                    if len(cache) < KEY_CACHE:
                        cache[v] = key
                keys.append(key)
        if len(order) == 1 and not absent:
            return [keys, True]
        code = dict(zip(order, range(1, len(order) + 1), strict=True))
        if absent:
            return [keys, [code.get(v, 0) for v in vals]]
        return [keys, list(map(code.__getitem__, vals))]
