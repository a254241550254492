"""Encode models into Redis hash fields and decode hashes back into models.

A :class:`Codec` is compiled once per model class from its annotations and the
storage hints of :mod:`agentmem.model.fields`. Encoding yields one value per hash
field (``None`` for an absent field, which is not stored); decoding accepts the
``HGETALL`` reply, including hashes written by the specification's own code.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel

from agentmem.errors import DecodeError, InvalidInput, SchemaError
from agentmem.model import jsonvalue
from agentmem.model.fields import AsJson, Split, StoredAs, Vector, WriteTime
from agentmem.model.generated import run_source

M = TypeVar("M", bound=BaseModel)
Raw = str | bytes | int | float
"""An encoded value: text, bytes, or a finite float / int written as ``repr`` writes it."""
Encoder = Callable[[Any], Raw]
Decoder = Callable[[bytes], Any]

_HINTS = (AsJson, Split, StoredAs, Vector, WriteTime)


def _unwrap(annotation: Any, metadata: Sequence[Any]) -> tuple[Any, list[Any]]:
    """Strip ``Optional`` and ``Annotated``; return the base type and every storage hint."""
    hints = [m for m in metadata if isinstance(m, _HINTS)]
    tp = annotation
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            hints += [m for m in tp.__metadata__ if isinstance(m, _HINTS)]
            tp = tp.__origin__
        elif origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(arms) != 1:
                return tp, hints
            tp = arms[0]
        else:
            return tp, hints


_SURROGATE = re.compile("[\ud800-\udfff]").search
"""A lone surrogate: text that has no UTF-8 form (pydantic's ``str`` accepts it), so no
server can store it; refused before anything is sent."""
NOT_UTF8 = "text with a lone surrogate (no UTF-8 form) cannot be stored"


def _enc_str(v: Any) -> Raw:
    s = str(v)
    if not s.isascii() and _SURROGATE(s):
        raise ValueError(NOT_UTF8)
    return s


def _enc_int(v: Any) -> Raw:
    return int(v)


def _enc_float(v: Any) -> Raw:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"must be a finite number, got {f!r}")
    return f


def _enc_bool(v: Any) -> Raw:
    return "1" if v else "0"


def _dec_str(b: bytes) -> Any:
    return b.decode()


def _dec_int(b: bytes) -> Any:
    try:
        return int(b)
    except ValueError:
        return int(float(b))


def _dec_bool(b: bytes) -> Any:
    return b in (b"1", b"true", b"True")


def _dec_json(b: bytes) -> Any:
    text = b.decode()
    try:
        return json.loads(text)
    except ValueError:
        return text  # as the specification's convert_hash_to_action does


_SCALARS: dict[Any, tuple[Encoder, Decoder]] = {
    str: (_enc_str, _dec_str),
    int: (_enc_int, _dec_int),
    float: (_enc_float, float),
    bool: (_enc_bool, _dec_bool),
}
SCALAR_ENCODERS: frozenset[Encoder] = frozenset(enc for enc, _ in _SCALARS.values())
"""The encoders of plain scalar fields (str, int, float, bool): a column of such a field
is read as Python values (``tolist()``) by the rows path."""


def _vector_codec(hint: Vector) -> tuple[Encoder, Decoder]:
    dtype = np.dtype(hint.dtype).newbyteorder("<")

    def enc(v: Any) -> Raw:
        arr = np.asarray(v)
        if arr.dtype != np.dtype(hint.dtype):
            raise ValueError(f"vector must have dtype {hint.dtype}, got {arr.dtype}")
        if arr.ndim != 1 or (hint.dim is not None and arr.shape[0] != hint.dim):
            want = f"({hint.dim},)" if hint.dim is not None else "1-D"
            raise ValueError(f"vector must have shape {want}, got {arr.shape}")
        return arr.astype(dtype, copy=False).tobytes()

    def dec(b: bytes) -> Any:
        return np.frombuffer(b, dtype=dtype).astype(hint.dtype)

    return enc, dec


@dataclass(frozen=True)
class FieldMap:
    """How one model field maps onto one or more hash fields."""

    name: str
    storage: tuple[str, ...]
    encode: Encoder
    decode: Decoder
    split: bool = False
    json: bool = False
    write_time: bool = False

    @property
    def numeric(self) -> bool:
        """An int or float field, which can be a sorted-set score."""
        return not self.split and self.encode in (_enc_int, _enc_float)

    @property
    def stores_numbers(self) -> bool:
        """Each hash field it maps onto holds an int or a float (``numeric``, or a
        ``Split`` of numbers such as a position's ``position_x``/``position_y``)."""
        return self.encode in (_enc_int, _enc_float)


def _field_map(name: str, annotation: Any, metadata: Sequence[Any]) -> FieldMap:
    tp, hints = _unwrap(annotation, metadata)
    stored_as = next((h.name for h in hints if isinstance(h, StoredAs)), name)
    split = next((h for h in hints if isinstance(h, Split)), None)
    vector = next((h for h in hints if isinstance(h, Vector)), None)
    if split is not None:
        args = typing.get_args(tp)
        if typing.get_origin(tp) is not tuple or len(args) != len(split.names):
            raise SchemaError(f"{name}: Split{split.names} needs a tuple of {len(split.names)}")
        elem = _unwrap(args[0], ())[0]
        if elem not in _SCALARS or any(_unwrap(a, ())[0] is not elem for a in args):
            raise SchemaError(f"{name}: Split elements must all be one of str, int, float, bool")
        enc, dec = _SCALARS[elem]
        return FieldMap(name, split.names, enc, dec, split=True)
    if any(isinstance(h, AsJson) for h in hints):
        return FieldMap(name, (stored_as,), jsonvalue.dumps, _dec_json, json=True)
    if vector is not None:
        enc, dec = _vector_codec(vector)
        return FieldMap(name, (stored_as,), enc, dec)
    if any(isinstance(h, WriteTime) for h in hints):
        if tp is not int:
            raise SchemaError(f"{name}: WriteTime() needs an int field")
        return FieldMap(name, (stored_as,), _enc_int, _dec_int, write_time=True)
    if tp in _SCALARS:
        enc, dec = _SCALARS[tp]
        return FieldMap(name, (stored_as,), enc, dec)
    raise SchemaError(
        f"{name}: cannot store {tp!r}; use str, int, float, bool, or a hint "
        "(Split, AsJson, Vector, WriteTime)"
    )


_K_STR, _K_INT, _K_FLOAT, _K_SKIP, _K_SPLIT, _K_OTHER = (
    "str", "int", "float", "skip", "split", "other")


def _kind(f: FieldMap) -> str:
    if f.write_time:
        return _K_SKIP
    if f.split:
        return _K_SPLIT
    if f.encode is _enc_str:
        return _K_STR
    if f.encode is _enc_int:
        return _K_INT
    if f.encode is _enc_float:
        return _K_FLOAT
    return _K_OTHER


class _Bad(Exception):
    def __init__(self, field: str, why: str) -> None:
        self.field, self.why = field, why


def _bad(field: str, exc: Exception) -> NoReturn:
    raise _Bad(field, str(exc)) from None


def _enc_json_owned(v: Any) -> Raw:
    """:func:`jsonvalue.dumps`, copied into a bytes object of its own size.

    orjson's result keeps the allocation of its larger working buffer; a bulk
    write holds thousands of them until they are sent, and allocating those
    costs several times the encoding (about 2 us against 0.3 us per value).
    """
    return bytes(memoryview(jsonvalue.dumps(v)))


def _compile_encoder(fields: Sequence[FieldMap]) -> Callable[[dict[str, Any]], list[Any]]:
    """Generate straight-line code that encodes one model's ``__dict__``.

    The same rules as the field encoders, without a per-field dispatch: str
    passes through, finite floats and ints pass to the packer as they are
    (it writes them as ``repr`` does), everything else calls its encoder.
    """
    env: dict[str, Any] = {"_bad": _bad, "float": float, "int": int, "str": str, "len": len,
                           "SURR": _SURROGATE, "NOT_UTF8": NOT_UTF8}
    lines = ["def encode(d):", "    out = []", "    ap = out.append", "    ex = out.extend"]
    for n, f in enumerate(fields):
        kind, width, name = _kind(f), len(f.storage), f.name
        env[f"enc{n}"] = _enc_json_owned if f.encode is jsonvalue.dumps else f.encode
        lines.append(f"    v = d[{name!r}]")
        nones = "ap(None)" if width == 1 else f"ex((None,) * {width})"
        if kind == _K_SKIP:
            lines.append(f"    {nones}")
            continue
        lines.append("    if v is None:")
        lines.append(f"        {nones}")
        lines.append("    else:")
        lines.append("        try:")
        if kind == _K_STR:
            lines.append("            if type(v) is not str: v = str(v)")
            lines.append("            if not v.isascii() and SURR(v): raise ValueError(NOT_UTF8)")
            lines.append("            ap(v)")
        elif kind == _K_FLOAT:
            lines.append("            if type(v) is not float: v = float(v)")
            lines.append("            if v - v != 0.0: raise ValueError("
                         "f'must be a finite number, got {v!r}')")
            lines.append("            ap(v)")
        elif kind == _K_INT:
            lines.append("            ap(v if type(v) is int else int(v))")
        elif kind == _K_SPLIT:
            lines.append(f"            if len(v) != {width}: raise ValueError("
                         f"f'needs {width} elements, got {{len(v)}}')")
            lines.append("            if None in v: raise ValueError('elements must not be None')")
            if f.encode is _enc_float:  # finite floats pass as they are
                lines.append("            for x in v:")
                lines.append("                if type(x) is not float: x = float(x)")
                lines.append("                if x - x != 0.0: raise ValueError("
                             "f'must be a finite number, got {x!r}')")
                lines.append("                ap(x)")
            else:
                lines.append(f"            ex([enc{n}(x) for x in v])")
        else:
            lines.append(f"            ap(enc{n}(v))")
        lines.append("        except (ValueError, TypeError) as exc:")
        lines.append(f"            _bad({name!r}, exc)")
    lines.append("    return out")
    run_source(lines, env)  # source built above from the model's fields
    encode: Callable[[dict[str, Any]], list[Any]] = env["encode"]
    return encode


_set = object.__setattr__


_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _dec_json_fast(b: bytes) -> Any:
    # orjson reads an integer beyond 64 bits as a float; such text takes the
    # exact standard-library parser, as does text that is not JSON at all
    if _LONG_NUMBER.search(b):
        return _dec_json(b)
    try:
        return orjson.loads(b)
    except orjson.JSONDecodeError:
        return _dec_json(b)


def _immutable(value: Any) -> bool:
    if value is None or isinstance(value, (str, bytes, int, float, bool, frozenset)):
        return True
    return isinstance(value, tuple) and all(_immutable(v) for v in value)


def _compile_decoder(model: type[BaseModel], fields: Sequence[FieldMap],
                     wire: Callable[[str], str]
                     ) -> Callable[[Mapping[bytes, bytes]], tuple[dict[str, Any], set[str]]]:
    """Generate straight-line code that turns an ``HGETALL`` mapping into field values.

    Returns every field (absent ones at their default) and the names present;
    ``wire`` gives the hash field a storage name is read from.
    """
    env: dict[str, Any] = {"_json": _dec_json_fast, "_factories": {}}
    lines = ["def decode(raw):", "    get = raw.get", "    d = {}", "    present = set()"]
    for n, f in enumerate(fields):
        info = model.model_fields[f.name]
        env[f"dec{n}"] = _dec_json_fast if f.json else f.decode
        if info.is_required():
            env[f"default{n}"] = None
            default = f"default{n}"
        elif info.default_factory is None and _immutable(info.default):
            env[f"default{n}"] = info.default
            default = f"default{n}"
        else:  # a factory, or a mutable default: pydantic makes a fresh one
            env["_factories"][f.name] = info
            default = (f"_factories[{f.name!r}].get_default(call_default_factory=True, "
                       "validated_data=d)")
        if f.split:
            parts = [f"get({wire(s).encode()!r})" for s in f.storage]
            lines.append(f"    p = ({', '.join(parts)},)")
            lines.append("    if None in p:")
            lines.append(f"        d[{f.name!r}] = {default}")
            lines.append("    else:")
            lines.append(f"        d[{f.name!r}] = tuple([dec{n}(x) for x in p])")
            lines.append(f"        present.add({f.name!r})")
        else:
            lines.append(f"    v = get({wire(f.storage[0]).encode()!r})")
            lines.append("    if v is None:")
            lines.append(f"        d[{f.name!r}] = {default}")
            lines.append("    else:")
            # the common decoders inline (no call per field); the same results
            if f.decode is _dec_str and not f.json:
                lines.append(f"        d[{f.name!r}] = v.decode()")
            elif f.decode is _dec_int and not f.json:
                lines.append("        try:")
                lines.append(f"            d[{f.name!r}] = int(v)")
                lines.append("        except ValueError:")
                lines.append(f"            d[{f.name!r}] = dec{n}(v)")
            elif f.decode is float and not f.json:
                lines.append(f"        d[{f.name!r}] = float(v)")
            else:
                lines.append(f"        d[{f.name!r}] = dec{n}(v)")
            lines.append(f"        present.add({f.name!r})")
    lines.append("    return d, present")
    run_source(lines, env)  # source built above from the model's fields
    decode: Callable[[Mapping[bytes, bytes]], tuple[dict[str, Any], set[str]]] = env["decode"]
    return decode


class Codec(Generic[M]):
    """The compiled mapping between one model class and its hash fields.

    Every part of agentmem names a field by its *storage name* (the model field's
    name, or its :class:`~agentmem.model.fields.StoredAs` / ``Split`` names): key
    patterns, index declarations, plans. ``hash_names`` (a mapping of storage names)
    changes only the name of the hash field each is kept under on the server, as a
    layout's compact form does (``docs/layouts.md``); :meth:`wire` translates.
    """

    def __init__(self, model: type[M], hash_names: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.fields = tuple(
            _field_map(name, info.annotation, info.metadata)
            for name, info in model.model_fields.items()
        )
        storage = [s for f in self.fields for s in f.storage]
        dupes = {s for s in storage if storage.count(s) > 1}
        if dupes:
            raise SchemaError(f"{model.__name__}: hash field names used twice: {sorted(dupes)}")
        self.storage_names: tuple[str, ...] = tuple(storage)
        renames = dict(hash_names or {})
        unknown = sorted(set(renames) - set(storage))
        if unknown:
            raise SchemaError(f"{model.__name__}: hash_names renames unknown fields {unknown}")
        bad = {k: v for k, v in renames.items() if not isinstance(v, str) or not v}
        if bad:
            raise SchemaError(f"{model.__name__}: hash_names must map to non-empty strings, "
                              f"got {bad}")
        self._wire = {s: renames.get(s, s) for s in storage}
        self.hash_names: tuple[str, ...] = tuple(self._wire[s] for s in storage)
        """The hash field of each storage name (the same names unless renamed)."""
        if len(set(self.hash_names)) != len(storage):
            raise SchemaError(f"{model.__name__}: hash_names gives two fields one name")
        self._storage_of = {w: s for s, w in self._wire.items()}
        stamps = [f for f in self.fields if f.write_time]
        if len(stamps) > 1:
            raise SchemaError(f"{model.__name__}: at most one WriteTime() field")
        self.write_time_field: FieldMap | None = stamps[0] if stamps else None
        self._by_storage = {s: f for f in self.fields for s in f.storage}
        self._encode = _compile_encoder(self.fields)
        self._decode = _compile_decoder(model, self.fields, self.wire)
        # pydantic's own model_construct does what build() does, plus private
        # attributes, extra fields and model_post_init; without those, build() is
        # the same and five times faster
        self._fast = not (model.__private_attributes__ or model.__pydantic_post_init__
                          or model.model_config.get("extra") == "allow")
        self._required = frozenset(
            name for name, info in model.model_fields.items() if info.is_required())

    @property
    def renamed(self) -> bool:
        """Whether any field is kept under a hash field name other than its storage name."""
        return self.hash_names != self.storage_names

    def wire(self, storage_name: str) -> str:
        """The hash field ``storage_name`` is kept under (itself unless renamed)."""
        try:
            return self._wire[storage_name]
        except KeyError:
            raise self._no_field(storage_name) from None

    def storage_of(self, hash_name: str) -> str | None:
        """The storage name kept under hash field ``hash_name`` (``None``: no field)."""
        return self._storage_of.get(hash_name)

    def field_for(self, storage_name: str) -> FieldMap:
        """The model field that stores ``storage_name``."""
        try:
            return self._by_storage[storage_name]
        except KeyError:
            raise self._no_field(storage_name) from None

    def _no_field(self, storage_name: str) -> SchemaError:
        return SchemaError(f"{self.model.__name__} has no hash field {storage_name!r}; "
                           f"it has {list(self.storage_names)}")

    def encode(self, obj: M) -> list[Raw | None]:
        """One value per name of :attr:`storage_names`; ``None`` where nothing is stored."""
        try:
            return self._encode(obj.__dict__)
        except _Bad as bad:
            raise InvalidInput(f"{self.model.__name__}.{bad.field}: {bad.why}") from None

    def encode_scalar(self, storage_name: str, value: Any) -> Raw:
        """Encode one value as it would be stored in ``storage_name`` (for query bounds)."""
        try:
            return self.field_for(storage_name).encode(value)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"{storage_name}: {exc}") from None

    def decode(self, raw: Mapping[bytes, bytes] | Sequence[bytes]) -> M:
        """Build a model from an ``HGETALL`` reply (a mapping or a flat list).

        Stored values are converted to the field types and the model is built
        without re-validation, so data written by other code (the
        specification's own functions) reads back as it is; a value that does
        not convert, or a missing required field, raises :class:`DecodeError`.
        """
        if type(raw) is list or not isinstance(raw, Mapping):  # the common case first
            it = iter(raw)
            raw = dict(zip(it, it, strict=True))
        try:
            values, present = self._decode(raw)
        except (ValueError, OverflowError, UnicodeDecodeError) as exc:
            raise DecodeError(f"stored {self.model.__name__} does not decode: {exc}") from exc
        if not self._required <= present:
            missing = self._required.difference(present)
            raise DecodeError(f"stored {self.model.__name__} lacks {sorted(missing)}")
        return self.build(values, present)

    def build(self, values: dict[str, Any], fields_set: set[str]) -> M:
        """An instance from complete, already-typed field values, without validation."""
        if self._fast:
            inst = self.model.__new__(self.model)
            _set(inst, "__dict__", values)
            _set(inst, "__pydantic_fields_set__", fields_set)
            _set(inst, "__pydantic_extra__", None)
            _set(inst, "__pydantic_private__", None)
            return inst
        return self.model.model_construct(fields_set, **values)

    def with_values(self, record: M, update: dict[str, Any]) -> M:
        """A copy of a validated ``record`` with some fields replaced (no validation)."""
        return self.build({**record.__dict__, **update},
                          record.__pydantic_fields_set__ | update.keys())
