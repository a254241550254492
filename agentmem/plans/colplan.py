"""Prepare writes from columns of field values, a column at a time (``add_columns``).

The column-wise fast path of :meth:`RowPlanner.prepare_columns
<agentmem.plans.rows.RowPlanner.prepare_columns>` (issue 19): the values are
validated and encoded column by column (:class:`~agentmem.model.colcodec.ColCodec`),
then :meth:`WritePlanner.prepare_encoded`'s checks run on each key and index
column's *distinct* values (key texts non-empty, at most 128 characters, none of the
forbidden characters; index values not empty, key ints not negative, score ints
exact as doubles), the ids are generated from the template for all rows at once
(``ID_FMT % parts`` over the zipped columns, checked as :func:`check_id` checks one)
or taken as given, and the rows are transposed and wrapped as :class:`Prepared`, the
same objects, values and types the row path gives.

It is only ever narrower than the row path: anything unusual, or anything the row
path would refuse, gives ``None`` and the row path runs (and explains). It never
raises. Pure: no I/O; imports ``agentmem.model`` and ``agentmem.plans.write``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import repeat
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel

from agentmem.model import colcodec
from agentmem.model.codec import FieldMap, _enc_bool, _enc_float, _enc_int
from agentmem.model.colcodec import ColCodec
from agentmem.model.fields import has_forbidden
from agentmem.plans.write import Prepared, WritePlanner
from agentmem.plans.writeargs import MAX_SCORE_INT

M = TypeVar("M", bound=BaseModel)

_MAX_KEY = 128

Column = Sequence[Any]
RowsOk = Callable[[Sequence[Column]], bool]
"""A repository's test of encoded columns: True when its ``check_values`` passes every
row of them, unseen (the rows are then never built)."""


class ColumnRows(Sequence[Prepared]):
    """Prepared records held as the columns they were encoded in: one mode, every row's
    id base, one column per storage name. A write that goes as columns
    (:class:`~agentmem.plans.colwrite.ColumnBatcher`) reads the columns and never builds
    a row; anything else reads it as the sequence of :class:`Prepared` it stands for,
    built whole on first use (one transposition)."""

    __slots__ = ("_rows", "absent", "bases", "cols", "mode", "plain", "wire")

    def __init__(self, mode: str, bases: Sequence[str], cols: Sequence[Column],
                 absent: Sequence[bool | None] | None = None) -> None:
        self.mode = mode
        self.bases = bases
        self.cols = cols
        self.absent: Sequence[bool | None] = absent if absent is not None else \
            [None] * len(cols)
        """Per column, whether it holds an absent value (None), where known (None: not
        known; look)."""
        self._rows: list[Prepared] | None = None
        self.plain: bool | None = None
        """Whether the ids are distinct and none holds a ``.``, where known (None: not
        known; look)."""
        self.wire: Any = None
        """What a column batcher made of the columns for its calls (its own)."""

    def rows(self) -> list[Prepared]:
        rows = self._rows
        if rows is None:
            rows = self._rows = list(map(Prepared, repeat(self.mode, len(self.bases)),
                                         self.bases, map(list, zip(*self.cols, strict=True))))
        return rows

    def __len__(self) -> int:
        return len(self.bases)

    @overload
    def __getitem__(self, j: int) -> Prepared: ...
    @overload
    def __getitem__(self, j: slice) -> Sequence[Prepared]: ...
    def __getitem__(self, j: int | slice) -> Prepared | Sequence[Prepared]:
        return self.rows()[j]

    def __iter__(self) -> Iterator[Prepared]:
        return iter(self.rows())


def column_at(prepared: Sequence[Prepared], pos: int) -> Sequence[Any]:
    """Every record's stored value at ``pos``, without building rows of columns."""
    if type(prepared) is ColumnRows:
        return prepared.cols[pos]
    return [p.vals[pos] for p in prepared]


def _kind(fm: FieldMap) -> str:
    """What a field's encoded values can be, as the row codec leaves them: ``"none"``
    neither text nor an int (floats, JSON bytes, a bool's ``'1'``/``'0'``, a write
    time's None), ``"int"`` ints (or None), ``"any"`` anything else (text)."""
    if fm.write_time or fm.json or fm.encode is _enc_float or fm.encode is _enc_bool:
        return "none"
    return "int" if fm.encode is _enc_int else "any"


def _key_texts_ok(values: AbstractSet[Any]) -> bool:
    """:meth:`WritePlanner.prepare_encoded`'s test of key values, on a column's
    distinct values: every str one non-empty, at most 128 characters, none forbidden."""
    texts = [v for v in values if type(v) is str]
    if not texts:
        return True
    return "" not in values and max(map(len, texts)) <= _MAX_KEY and \
        not has_forbidden("".join(texts))


class ColumnPlanner(Generic[M]):
    """The column-wise fast path of one declaration's ``add_columns``."""

    def __init__(self, writer: WritePlanner[M]) -> None:
        self.writer = writer
        self.codec = ColCodec(writer.spec.model, writer.spec.codec)
        w = writer
        # what a column of each storage name can hold once encoded: the checks below
        # look only where the row path's checks can find something
        kinds = [_kind(w.spec.codec.field_for(name)) for name in w.names]
        key = {i for i in w.key_pos if kinds[i] == "any"}
        empty = {i for i, _ in w._index_checks if kinds[i] == "any"}
        negative = {i for i, neg in w._index_checks if neg and kinds[i] != "none"}
        score = {i for i in w._score_pos if kinds[i] != "none"}
        self._checks = [(i, i in key, i in empty, i in negative, i in score)
                        for i in sorted(key | empty | negative | score)]
        """Per position checked: whether as a key's text, as not empty, as not negative,
        as a score."""
        self._good: dict[int, set[str]] = {i: set() for i, *_ in self._checks
                                           if kinds[i] == "any"}
        """Per text column: texts that passed its checks, remembered across writes (up to
        :data:`~agentmem.model.colcodec.KNOWN`, never forgotten: threads may share them;
        a text equals only a text, the columns hold no ``str`` subclass): a
        simulation's agents and types are checked once per run. The checks are pure."""
        self._id_pos = w.id_pos
        self._template = w.id_template
        self._check_generated = w._check_generated
        self._reserved = w.spec.reserved_ids

    def prepare(self, columns: Mapping[str, Any],
                check_values: Callable[[list[Any]], None] | None,
                rows_ok: RowsOk | None = None, copy: bool = True) -> ColumnRows | None:
        """Every row of ``columns`` prepared as the row path prepares it (held as
        columns: :class:`ColumnRows`), or None: take the row path. ``check_values``
        (the repository's check of a row's encoded values) runs on every row unless
        ``rows_ok`` says of the columns that it passes them all; a row it refuses gives
        None too. ``copy=False``: a column the codec passes through unchanged may be the
        caller's own list (a caller that copies what it keeps, as a step log does)."""
        try:
            return self._prepare(columns, check_values, rows_ok, copy)
        except Exception:  # anything unexpected: the row path decides (and explains)
            return None

    def _prepare(self, columns: Mapping[str, Any],
                 check_values: Callable[[list[Any]], None] | None,
                 rows_ok: RowsOk | None, copy: bool) -> ColumnRows | None:
        got_cols = self.codec.encode(columns)
        if got_cols is None:
            return None
        cols, absent, known = got_cols
        # a column the codec passed through unchanged is the caller's own list: copied,
        # so that changing it later (before a batch runs the write) changes nothing
        given = {id(c) for c in columns.values() if type(c) is list} if copy else None
        if given:
            cols = [list(c) if id(c) in given else c for c in cols]
        n = len(cols[0])
        # the checks of prepare_encoded, on each column's distinct values
        distinct: dict[int, AbstractSet[Any]] = {}

        def values(i: int) -> AbstractSet[Any]:
            d = distinct.get(i)
            if d is None:
                d = distinct[i] = known[i] or set(cols[i])
            return d

        for i, key, empty, negative, score in self._checks:
            vals = values(i)
            good = self._good.get(i)
            if good:  # a text column: its values passed before are not checked again
                vals = vals - good
                if not vals:
                    continue
            if key and not _key_texts_ok(vals):
                return None
            if empty and "" in vals:
                return None
            if negative or score:
                ints = [v for v in vals if type(v) is int]
                if ints and negative and min(ints) < 0:
                    return None
                if ints and score and not (min(ints) >= -MAX_SCORE_INT
                                           and max(ints) <= MAX_SCORE_INT):
                    return None
            if good is not None and len(good) < colcodec.KNOWN:
                good.update([v for v in vals if type(v) is str])
        got = self._bases(cols, absent, n, values(self._id_pos))
        if got is None:
            return None
        mode, bases = got
        out = ColumnRows(mode, bases, cols, absent)
        if check_values is not None and (rows_ok is None or not rows_ok(cols)):
            deque(map(check_values, (p.vals for p in out.rows())), 0)  # raises: the row
        return out  # path explains

    def _bases(self, cols: list[Sequence[Any]], absent: Sequence[bool | None], n: int,
               ids: AbstractSet[Any]) -> tuple[str, Sequence[str]] | None:
        """The mode and every row's id base: ``'g'`` and the ids generated from the
        template when no row gives an id, ``'f'`` and the ids given when every row
        gives one (a text); None: take the row path."""
        if ids == {None}:
            t = self._template
            if t is None:
                return None
            parts = [cols[i] for i in t.refs]
            if any(absent[i] is not False and None in cols[i] for i in t.refs):
                return None
            fmt = t.fmt
            bases = list(map(fmt.__mod__, zip(*parts, strict=True))) if parts \
                else [fmt % ()] * n
            if self._check_generated and not self._ids_ok(bases):
                return None
            return "g", bases
        if None in ids or not all(type(v) is str for v in ids):
            return None  # ints (a negative one is refused) and a mix: row by row
        if not self._ids_ok(list(ids)):
            return None
        return "f", cols[self._id_pos]

    def _ids_ok(self, ids: list[str]) -> bool:
        """:meth:`WritePlanner._check_id` of every id: non-empty, at most 128
        characters, none forbidden, not reserved."""
        return bool(ids) and "" not in ids and max(map(len, ids)) <= _MAX_KEY and \
            not has_forbidden("".join(ids)) and self._reserved.isdisjoint(ids)
