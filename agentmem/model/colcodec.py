"""Validate and encode records given as columns of field values, a column at a time.

The column-wise fast path of ``add_columns`` (issue 19): a :class:`ColCodec` turns
columns (field name -> list, tuple or numpy array, all of one length) into the
stored values of every row, column by column, with C-level builtins instead of one
generated call per row: a text column's *distinct* values are checked once each
(``set(col)``), types with ``set(map(type, col))``, numbers of a numpy array with
its dtype, ``np.isfinite`` and ``min``/``max`` before ``tolist()``, flat ``details``
dicts with one walk over all their keys and values, then ``orjson``.

It is never more lenient than :class:`~agentmem.model.rowcodec.RowCodec`, whose
per-value code it reuses: each field's check is the row codec's own generated code
for that field (:func:`agentmem.model.rowcodec._field`), called once per distinct
value, or per value where a column holds anything the column checks do not handle.
Whenever a value would not pass the row codec, or anything is unusual (an unknown
column, columns of different lengths, no rows, a dtype or type it does not know),
:meth:`ColCodec.encode` returns ``None`` for the whole call and the caller takes the
row path, which gives the same values or the same error. It never raises.

Checking a distinct value once assumes a text field's ``before`` validators are pure
(equal text in, equal value out; they run once per distinct value, not once per
row), as every validator of agentmem's own models is; a column of other types, where
equal values of different types could merge in a set, is checked value by value.

Imports: the standard library, numpy, orjson, pydantic and ``agentmem.model`` only
(pure, no I/O).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from functools import partial
from itertools import chain
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agentmem.model import jsonvalue
from agentmem.model.codec import SCALAR_ENCODERS, Codec, FieldMap
from agentmem.model.generated import run_source
from agentmem.model.rowcodec import (
    _EXACT_FLOAT,
    _SURROGATE,
    MISSING,
    _field,
    _field_validators,
    _flat_json,
    _model_ok,
    _Rule,
    _rule,
    _Source,
    _Unsupported,
)

__all__ = ["ColCodec"]

Column = Sequence[Any]
Encoded = tuple[list[Column], list[bool | None], list[AbstractSet[Any] | None]]
"""A field's stored columns (one per storage name); whether each holds an absent value
(None), where known (None: not known); and each one's distinct values, where known."""
Kernel = Callable[[Any, int], "Encoded | None"]
"""A column (list, tuple or numpy array) and the row count -> the field's stored
columns, or None: take the row path."""

_NONE = type(None)
_NOT_NONE = partial(operator.is_not, None)
_IS_FLOAT = float.__instancecheck__
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_PLAIN_JSON = frozenset({str, int, bool, float, _NONE})
_FIRST = operator.itemgetter(0)
_COPY: Callable[[bytes], bytes] = b"%b".__mod__
"""A copy of a bytes object (of orjson's: see :func:`_json`)."""


def _encoder(info: FieldInfo, fm: FieldMap, fv: list[Any]) -> Callable[[Any], Any]:
    """The row codec's code for one field, as a function of its value (or
    :data:`MISSING`) -> the tuple of its stored values, or None."""
    src = _Source()
    src.env.update({"MISSING": MISSING, "SURR": _SURROGATE, "JCHECK": jsonvalue._check,
                    "FLAT": _flat_json, "DUMPS": orjson.dumps})
    outs = _field(src, 0, info, fm, fv)
    start, end = src.pattern_checks()
    source = ["def enc(v0):", "  try:", "    miss = 0", *start, *src.lines, *end,
              f"    return ({', '.join(outs)},)", "  except Exception:", "    return None"]
    run_source(source, src.env)  # source built from the declaration (rowcodec)
    enc: Callable[[Any], Any] = src.env["enc"]
    return enc


def _each(enc: Callable[[Any], Any], width: int, listed: bool = True) -> Kernel:
    """Every value through the field's row code (the general case); ``listed``: a
    numpy array is read as its ``tolist()``, as the row path does (not for an
    arbitrary type's column: an embedding matrix's rows are the vectors)."""
    def each(col: Any, n: int) -> Encoded | None:
        out = list(map(enc, _listed(col) if listed else col))
        if None in out:
            return None
        cols: list[Column] = [list(map(_FIRST, out))] if width == 1 else \
            list(zip(*out, strict=True))
        return cols, [None] * width, [None] * width
    return each


def _listed(col: Any) -> Any:
    """A numpy array (or anything with ``tolist``) as its list, as the row path reads it."""
    return col.tolist() if type(col) is not list and type(col) is not tuple else col


def _bounded(rule: _Rule, lo: Any, hi: Any) -> bool:
    return all(_OPS[op](lo if op in (">=", ">") else hi, bound) for op, bound in rule.bounds)


SHORT = 512
"""A numpy column of at most this many numbers is checked as its list: numpy's
reductions (``isfinite``, ``min``, ``max``) cost more per call than Python's ``sum``,
``min`` and ``max`` over a few hundred values (a step of a simulation's agents)."""

KNOWN = 1 << 14
"""How many distinct values of a text column (its agents' ids, its types) a codec
remembers as checked, across writes: a simulation's next step brings the same ones."""


def _pure(validators: list[Any]) -> bool:
    """Whether a field's ``before`` validators (the model's, or its type's
    ``BeforeValidator``) are all agentmem's own, which are pure
    (the same value in, the same value out, nothing else read): a model's others may
    read the world, and run on every write."""
    return all(getattr(f, "__module__", "").startswith("agentmem.") for f in validators)


def _distinct(rule: _Rule, enc: Callable[[Any], Any], fallback: Kernel | None,
              remember: bool = True) -> Kernel:
    """A text (or bool) column: its types, then each distinct value checked once; with
    ``remember`` (the field's check is pure), remembered as checked across writes (up to
    :data:`KNOWN` values; never forgotten, as threads may share the codec) with what it
    is stored as."""
    allowed = {rule.base, _NONE}
    kept: dict[Any, Any] = {}
    same_kept = [True]  # whether every value remembered is stored as itself

    def distinct(col: Any, n: int) -> Encoded | None:
        col = _listed(col)
        if not set(map(type, col)) <= allowed:
            return fallback(col, n) if fallback is not None else None
        known, same = (kept, same_kept) if remember else ({}, [True])
        values = set(col)
        new = values.difference(known)
        here: dict[Any, Any] | None = None  # values checked that there was no room for
        for v in new:
            r = enc(v)
            if r is None:
                return None
            if r[0] is not v:
                same[0] = False
            if len(known) < KNOWN:
                known[v] = r[0]
            else:
                if here is None:
                    here = {}
                here[v] = r[0]
        if same[0]:  # (set False above by any value stored otherwise)
            return [col], [None in values], [values]
        if here is None:
            return [list(map(known.__getitem__, col))], [None], [None]
        return [list(map(here.get, col, map(known.get, col)))], [None], [None]
    return distinct


def _number(rule: _Rule, fallback: Kernel | None, nullable: bool) -> Kernel:
    """An int or float column: a numpy array by its dtype, ``isfinite`` and bounds;
    a list or tuple by its types, ``sum`` (finite) and ``min``/``max`` (bounds)."""
    is_float = rule.base is float
    allowed = {rule.base, _NONE} if nullable else {rule.base}

    def number(col: Any, n: int) -> Encoded | None:
        if type(col) is np.ndarray:
            kind = col.dtype.kind
            if col.ndim != 1 or not (kind in "iu" or (is_float and kind == "f"
                                                      and col.dtype.itemsize <= 8)):
                return fallback(col.tolist(), n) if fallback is not None else None
            if n <= SHORT and (kind == "f" or not is_float):
                # its list, every value of one type (float, or int): checked as a
                # list's are, below, without numpy's reductions
                return checked(col.tolist(), False)
            if kind == "f":
                if not np.isfinite(col).all():
                    return None
                lo, hi = float(col.min()), float(col.max())
                out = col.tolist()
            else:
                lo, hi = int(col.min()), int(col.max())
                if is_float and not (lo >= -_EXACT_FLOAT and hi <= _EXACT_FLOAT):
                    return None
                out = col.tolist()
                if is_float:
                    out = list(map(float, out))
                    lo, hi = float(lo), float(hi)
            return ([out], [False], [None]) if _bounded(rule, lo, hi) else None
        col = _listed(col)
        types = set(map(type, col))
        if not types <= allowed:
            return fallback(col, n) if fallback is not None else None
        return checked(col, _NONE in types)

    def checked(col: list[Any] | tuple[Any, ...], absent: bool) -> Encoded | None:
        """A column of the field's type (or None, where ``absent``): finite, in bounds."""
        vals = col if not absent else list(filter(_NOT_NONE, col))
        if not vals:
            return [col], [absent], [None]
        if is_float:
            total = sum(vals)
            if total - total != 0.0:  # a NaN or infinity, or an overflow: row by row
                return fallback(col, len(col)) if fallback is not None else None
        if rule.bounds and not _bounded(rule, min(vals), max(vals)):
            return None
        return [col], [absent], [None]
    return number


def _split(rule: _Rule, width: int, fallback: Kernel) -> Kernel:
    """A ``Split`` column: an ``(n, width)`` numpy array or a list of equal-length
    tuples or lists, checked element column by element column."""
    elems: list[Kernel] = []
    for elem in rule.args:
        if elem.base not in (int, float) or elem.before or elem.nullable:
            raise _Unsupported("split element")
        elems.append(_number(elem, None, False))

    def split(col: Any, n: int) -> Encoded | None:
        if type(col) is np.ndarray:
            if col.ndim != 2 or col.shape[1] != width:
                return fallback(col.tolist(), n)
            parts: list[Any] = [col[:, k] for k in range(width)]
        else:
            col = _listed(col)
            if not set(map(type, col)) <= {tuple, list} or set(map(len, col)) != {width}:
                return fallback(col, n)
            parts = list(zip(*col, strict=True))
        out: list[Column] = []
        absent: list[bool | None] = []
        for kern, part in zip(elems, parts, strict=True):
            got = kern(part, n)
            if got is None:
                return fallback(_listed(col), n)
            out += got[0]
            absent += got[1]
        return out, absent, [None] * len(out)
    return split


def _json(fallback: Kernel) -> Kernel:
    """A ``details`` column of flat dicts (values str, int, bool, float, None): the
    values' types checked in one pass over the column (the keys by ``orjson``, which
    refuses any but a str), then ``orjson``; anything else row by row (the row codec's
    code), or the row path."""
    dumps, plain = orjson.dumps, _PLAIN_JSON

    def json_col(col: Any, n: int) -> Encoded | None:
        col = _listed(col)
        types = set(map(type, col))
        if types == {dict}:
            dicts = col
        elif types == {dict, _NONE}:
            dicts = list(filter(_NOT_NONE, col))
        else:
            return fallback(col, n)
        # (keys: orjson refuses any but a str, below)
        vtypes = set(map(type, chain.from_iterable(map(dict.values, dicts))))
        if not vtypes <= plain:
            return fallback(col, n)
        try:
            # orjson refuses what the row codec's walk refuses of these (lone
            # surrogates; ints beyond 64 bits, which the row codec leaves to pydantic),
            # and a key that is not a str (a subclass too): the row path decides.
            # The column at once, cut between its dicts ("},{" outside a text, which
            # holds no NUL byte once written); where a text holds "},{" too, each dict
            # on its own, copied at once as rowcodec's bytes(memoryview(...)) does:
            # retaining orjson's own bytes objects is ~15x slower; b"%b" % text is the
            # same copy in one call (0.14 against 0.19 µs per text)
            whole = dumps(dicts)
            out = whole[1:-1].replace(b"},{", b"}\0{").split(b"\0")
            if len(out) != len(dicts):
                out = list(map(_COPY, map(dumps, dicts)))
        except orjson.JSONEncodeError:
            return None
        # orjson writes a NaN or an infinity as null: with no None among the values, a
        # ":null" can only be one of those (or a text's): then the sum tells
        if float in vtypes and (_NONE in vtypes or b":null" in whole):
            total = sum(filter(_IS_FLOAT, chain.from_iterable(map(dict.values, dicts))))
            if total - total != 0.0:
                return fallback(col, n)
        if len(whole) > jsonvalue.MAX_BYTES and max(map(len, out)) > jsonvalue.MAX_BYTES:
            return None
        if dicts is col:
            return [out], [False], [None]
        it = iter(out)
        return [[None if v is None else next(it) for v in col]], [True], [None]
    return json_col


def _write_time(col: Any, n: int) -> Encoded | None:
    """A write-time column: ints or None (the server's clock is stored)."""
    if not set(map(type, _listed(col))) <= {int, _NONE}:
        return None
    return [[None] * n], [True], [{None}]


class _FieldCol:
    __slots__ = ("absent", "distinct", "enc", "kernel", "missing", "width")

    def __init__(self, enc: Callable[[Any], Any], kernel: Kernel, width: int,
                 static: bool) -> None:
        self.enc, self.kernel, self.width = enc, kernel, width
        self.missing: tuple[Any, ...] | None = None
        """The stored values of the field when its column is not given, when they are
        the same in every write (``static``: a default value, and no validator but
        agentmem's own, which are pure); ``()``: refused (a required field)."""
        self.absent: list[bool | None] = []
        self.distinct: list[AbstractSet[Any] | None] = []
        if static:
            r = enc(MISSING)
            self.missing = () if r is None else r
            if r is not None:
                self.absent = [x is None for x in r]
                self.distinct = [frozenset((x,)) if x is None or type(x) in _PLAIN_JSON
                                 else None for x in r]


def _kernel(info: FieldInfo, fm: FieldMap, fv: list[Any], enc: Callable[[Any], Any]
            ) -> Kernel:
    width = len(fm.storage)
    each = _each(enc, width, bool(fm.split or fm.json or fm.write_time
                                  or fm.encode in SCALAR_ENCODERS))
    if fv:  # the model's validators run on any value: text columns only, else row code
        rule = _rule(info.annotation, info.metadata, outer=True)
        if rule.base is str and not (fm.json or fm.split or fm.write_time):
            return _distinct(rule, enc, each, _pure(fv) and _pure(rule.before))
        return each
    rule = _rule(info.annotation, info.metadata, outer=True)
    if fm.write_time:
        return _write_time
    if fm.json:
        return _json(each)
    if fm.split:
        try:
            return _split(rule, width, each)
        except _Unsupported:
            return each
    if rule.base in (str, bool):
        return _distinct(rule, enc, each, _pure(rule.before))
    if rule.base in (int, float) and not rule.before:
        return _number(rule, each, rule.nullable)
    return each


class ColCodec:
    """The column-wise fast path of one model (see the module's documentation)."""

    def __init__(self, model: type[BaseModel], codec: Codec[Any]) -> None:
        self.model = model
        self.names: tuple[str, ...] = tuple(model.model_fields)
        self.why_slow = ""
        """Why the model has no column path (empty when it has one)."""
        self._fields: dict[str, _FieldCol] = {}
        try:
            _model_ok(model)
            for name, fm in zip(self.names, codec.fields, strict=True):
                info = model.model_fields[name]
                fv = _field_validators(model, name)
                enc = _encoder(info, fm, fv)
                self._fields[name] = _FieldCol(
                    enc, _kernel(info, fm, fv, enc), len(fm.storage),
                    info.default_factory is None and _pure(fv))
        except _Unsupported as exc:
            self.why_slow = str(exc)
            self._fields = {}

    @property
    def ok(self) -> bool:
        """Whether the model has a column path."""
        return bool(self._fields)

    def encode(self, columns: Mapping[str, Any]) -> Encoded | None:
        """The stored columns of ``columns`` (one per storage name, in order, each of
        one value per row) and whether each holds an absent value (None: not known), or
        None: take the row path (see the module's docs)."""
        try:
            return self._encode(columns)
        except Exception:  # anything unexpected: the row path decides
            return None

    def _encode(self, columns: Mapping[str, Any]) -> Encoded | None:
        fields = self._fields
        if not fields or type(columns) is not dict or not columns.keys() <= fields.keys():
            return None
        n = -1
        for col in columns.values():
            t = type(col)
            if t is np.ndarray:
                if col.ndim == 0:
                    return None
                size = col.shape[0]
            elif t is list or t is tuple:
                size = len(col)
            else:
                return None
            if n == -1:
                n = size
            elif size != n:
                return None
        if n <= 0:
            return None
        out: list[Column] = []
        absent: list[bool | None] = []
        distinct: list[AbstractSet[Any] | None] = []
        for name, f in fields.items():
            col = columns.get(name, MISSING)
            if col is MISSING:
                r = f.missing
                if r is None:  # computed in every write
                    r = f.enc(MISSING)
                    if r is None:
                        return None
                    for x in r:
                        out.append([x] * n)
                        absent.append(x is None)
                        distinct.append(frozenset((x,)) if x is None or type(x) in _PLAIN_JSON
                                        else None)
                    continue
                if not r:
                    return None
                for x in r:
                    out.append([x] * n)
                absent += f.absent
                distinct += f.distinct
                continue
            got = f.kernel(col, n)
            if got is None:
                return None
            out += got[0]
            absent += got[1]
            distinct += got[2]
        return out, absent, distinct
