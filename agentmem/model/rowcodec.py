"""Validate and encode a record given as plain field values, without a model object.

A :class:`RowCodec` is compiled once per model class, as :class:`~agentmem.model.codec.Codec`
is, into one straight-line function over the values of every field. For each field it
accepts only what pydantic accepts *and* stores the same way: the exact type
(``str``, ``int``, ``float`` or an ``int`` a double holds exactly for a float field,
``bool``, a tuple or list for a ``Split``, plain JSON for ``AsJson``, the declared
class for an arbitrary type), the field's constraints (lengths, patterns on ASCII
text, bounds, finite floats), its ``before`` validators, defaults. It returns the
encoded values :meth:`Codec.encode` gives for the model pydantic would build, or
``None`` when a value is anything else. ``None`` is not a refusal: the caller then
builds the model with pydantic, which accepts (a ``"5"`` for an int, a numpy
scalar) or explains what is wrong. So the fast path can only be narrower than
pydantic, never more lenient, and the stored bytes are the same either way.

A model using what the compiler does not know (other constraints or validators,
aliases, strict mode, model validators, a custom ``__init__``) gets no fast path:
:attr:`RowCodec.fast` is ``None`` and every row is built with pydantic.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import annotated_types as at
import orjson
from pydantic import BaseModel, BeforeValidator, PlainSerializer, StringConstraints
from pydantic.fields import FieldInfo

from agentmem.model import jsonvalue
from agentmem.model.codec import Codec, FieldMap
from agentmem.model.fields import AsJson, Split, StoredAs, Vector, WriteTime
from agentmem.model.generated import run_source

__all__ = ["MISSING", "RowCodec"]

MISSING: Any = object()
"""The value of a field a row does not give (its default applies)."""

_EXACT_FLOAT = 2**53
"""Ints a float field takes as they are: a double holds them exactly."""
_CONFIG = frozenset({"frozen", "extra", "arbitrary_types_allowed", "title",
                     "protected_namespaces", "json_schema_extra"})
"""model_config keys that change nothing of what a row's values validate to."""
_HINTS = (AsJson, Split, StoredAs, Vector, WriteTime, PlainSerializer)
_SURROGATE = re.compile("[\ud800-\udfff]").search  # pydantic refuses them in any str


class _Unsupported(Exception):
    """The model (or a field) uses something the fast path does not reproduce."""


class _Rule:
    """What one type accepts: its base type, constraints and before validators."""

    def __init__(self) -> None:
        self.base: Any = None
        self.nullable = False
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.pattern: str | None = None
        self.bounds: list[tuple[str, Any]] = []
        self.before: list[Callable[[Any], Any]] = []
        self.args: tuple[Any, ...] = ()


def _constrain(rule: _Rule, meta: Any) -> None:
    if isinstance(meta, FieldInfo):
        for m in meta.metadata:
            _constrain(rule, m)
        return
    if isinstance(meta, _HINTS):
        return  # storage hints and serializers: the codec's business
    if isinstance(meta, StringConstraints):
        if any(getattr(meta, k) is not None for k in
               ("strip_whitespace", "to_upper", "to_lower", "strict")):
            raise _Unsupported("string transformations")
        rule.min_len, rule.max_len, rule.pattern = meta.min_length, meta.max_length, \
            meta.pattern if isinstance(meta.pattern, str | None) else None
        if meta.pattern is not None and rule.pattern is None:
            raise _Unsupported("compiled pattern")
        return
    if isinstance(meta, at.MinLen):
        rule.min_len = meta.min_length
    elif isinstance(meta, at.MaxLen):
        rule.max_len = meta.max_length
    elif isinstance(meta, at.Ge | at.Gt | at.Le | at.Lt):
        attr, op = {at.Ge: ("ge", ">="), at.Gt: ("gt", ">"), at.Le: ("le", "<="),
                    at.Lt: ("lt", "<")}[type(meta)]
        rule.bounds.append((op, getattr(meta, attr)))
    elif isinstance(meta, BeforeValidator):
        if len(inspect.signature(meta.func).parameters) != 1:
            raise _Unsupported("validator with info")
        rule.before.append(meta.func)  # type: ignore[arg-type]  # one parameter: no info
    elif type(meta).__name__ == "_PydanticGeneralMetadata" and set(
            getattr(meta, "__dict__", {"?": 0})) <= {"allow_inf_nan"}:
        pass  # finite floats: the codec refuses others, so the fast path always does
    else:
        raise _Unsupported(f"constraint {meta!r}")


def _rule(annotation: Any, metadata: Sequence[Any], *, outer: bool) -> _Rule:
    rule = _Rule()
    tp = annotation
    metas = list(metadata)
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            metas += tp.__metadata__
            tp = tp.__origin__
        elif origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(arms) != 1:
                raise _Unsupported("union")
            if outer and any(isinstance(m, BeforeValidator) for m in metas):
                raise _Unsupported("validator around an optional type")
            rule.nullable, tp = True, arms[0]
        else:
            break
    for m in metas:
        _constrain(rule, m)
    rule.before.reverse()  # pydantic runs the last one given first (the outermost)
    rule.base = tp
    if typing.get_origin(tp) is tuple:
        rule.args = tuple(_rule(a, (), outer=False) for a in typing.get_args(tp))
        if not rule.args or any(a.base is Ellipsis for a in rule.args):
            raise _Unsupported("variable tuple")
    return rule


_CLASS_PATTERN = re.compile(r"\^\[([^\]]|\\\])+\]\+\$")
"""A pattern of one character class, anchored: ``^[...]+$``, as the id types have."""


def _refused_ascii(pattern: str) -> str:
    """A regular expression finding the ASCII characters ``pattern`` (``^[...]+$``)
    refuses. On ASCII text, that one character class means the same to Python's re and
    to pydantic's Rust regex (``$`` does not: Python's also matches before a last
    ``\\n``, hence the class is tested character by character)."""
    if not _CLASS_PATTERN.fullmatch(pattern):
        raise _Unsupported(f"pattern {pattern!r}")
    one = re.compile(pattern)
    bad = [c for c in map(chr, range(128)) if not one.fullmatch(c)]
    return "[" + "".join(f"\\x{ord(c):02x}" for c in bad) + "]" if bad else "(?!)"


def _flat_json(d: dict[Any, Any]) -> None:
    """:func:`jsonvalue._check` of a dict, without a call per plain entry (details are
    mostly flat dicts of ASCII text and numbers): raises what it raises."""
    for k, x in d.items():
        t = type(x)
        if type(k) is not str or not k.isascii() or (t is str and not x.isascii()):
            jsonvalue._check(d, 0)
            return
        if t is float:
            if x - x != 0.0:
                raise ValueError("not JSON")
        elif t is not str and t is not int and t is not bool and x is not None:
            jsonvalue._check(x, 1)


class _Source:
    """Generated lines and the names they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {}
        self.patterns: dict[str, str] = {}
        """Pattern -> the name of the text its fields are collected in."""

    def pattern_text(self, pattern: str) -> str:
        if pattern not in self.patterns:
            self.patterns[pattern] = f"pt{len(self.patterns)}"
        return self.patterns[pattern]

    def pattern_checks(self) -> tuple[list[str], list[str]]:
        """Lines starting and ending the collected texts' checks: ASCII, and none of the
        characters the pattern refuses (anything else: pydantic decides)."""
        start, end = [], []
        for pattern, text in self.patterns.items():
            bad = self.name("bad", re.compile(_refused_ascii(pattern)).search)
            start.append(f"    {text} = ''")
            end.append(f"    if not {text}.isascii() or {bad}({text}): return None")
        return start, end

    def name(self, prefix: str, value: Any) -> str:
        n = f"{prefix}{len(self.env)}"
        self.env[n] = value
        return n

    def add(self, indent: int, *lines: str) -> None:
        self.lines += [" " * indent + line for line in lines]


def _scalar(src: _Source, rule: _Rule, ind: int, var: str) -> None:
    """Lines checking scalar ``var`` (leaving its stored value in ``var``), or raise."""
    base = rule.base
    for fn in rule.before:
        src.add(ind, f"{var} = {src.name('bv', fn)}({var})")
    if base is str:
        src.add(ind, f"if type({var}) is not str: return None")
        if rule.pattern is not None:
            # the text of every field of one pattern is checked at once, at the end
            src.add(ind, f"{src.pattern_text(rule.pattern)} += {var}")
        else:
            src.add(ind, f"if not {var}.isascii() and SURR({var}): return None")
        # a pattern (``^[...]+$``) refuses an empty string whatever min_length says
        least = 1 if rule.pattern is not None else 0
        if rule.min_len is not None or least:
            src.add(ind, f"if len({var}) < {max(rule.min_len or 0, least)}: return None")
        if rule.max_len is not None:
            src.add(ind, f"if len({var}) > {rule.max_len}: return None")
    elif base is int:
        src.add(ind, f"if type({var}) is not int: return None")
    elif base is float:
        src.add(ind, f"if type({var}) is not float:",
                f"    if type({var}) is int and {-_EXACT_FLOAT} <= {var} <= {_EXACT_FLOAT}: "
                f"{var} = float({var})",
                "    else: return None",
                f"if {var} - {var} != 0.0: return None")
    elif base is bool:
        src.add(ind, f"if type({var}) is not bool: return None",
                f"{var} = '1' if {var} else '0'")
    else:
        raise _Unsupported(f"type {base!r}")
    if (rule.min_len is not None or rule.max_len is not None) and base is not str:
        raise _Unsupported("length of a non-string")
    for op, bound in rule.bounds:
        if base not in (int, float) or type(bound) not in (int, float):
            raise _Unsupported("bound")
        src.add(ind, f"if not ({var} {op} {bound!r}): return None")


def _field(src: _Source, n: int, info: FieldInfo, fm: FieldMap, fv: list[Any]) -> list[str]:
    """Lines validating field ``n`` (in ``v{n}``); returns the variables holding its
    stored values then."""
    rule = _rule(info.annotation, info.metadata, outer=True)
    width = len(fm.storage)
    outs = [f"v{n}"] if width == 1 else [f"x{n}_{k}" for k in range(width)]
    nones = "pass" if width == 1 else " = ".join([*outs, "None"])
    var = f"v{n}"
    src.add(4, f"if {var} is MISSING:", "    miss += 1")
    # a default is taken as it is (pydantic does not validate it unless told to):
    # one the checks below would not leave as it is goes to pydantic
    plain_default = info.default is None or (type(info.default) in (str, int, float, bool)
                                             and not rule.before)
    if info.is_required() or info.default_factory is not None or info.validate_default \
            or not plain_default:
        src.add(8, "return None")
    else:
        src.add(8, f"{var} = {src.name('df', info.default)}")
    if fv:  # the model's before validators: on every value given, None included
        src.add(4, "else:")
        src.add(8, *[f"{var} = {src.name('fv', fn)}({var})" for fn in fv])
    if fm.write_time:
        if rule.base is not int:
            raise _Unsupported("write time")
        src.add(4, f"if {var} is not None and type({var}) is not int: return None")
        return ["None"] * width
    ind = 4
    if rule.nullable or rule.base is Any:
        src.add(4, f"if {var} is None:", f"    {nones}", "else:")
        ind = 8
    if fm.json:
        if rule.base is not Any or rule.before or rule.bounds:
            raise _Unsupported("JSON of a declared type")
        src.add(ind, f"if type({var}) is dict: FLAT({var})", f"else: JCHECK({var}, 0)",
                f"{var} = DUMPS({var})",
                f"if len({var}) > {jsonvalue.MAX_BYTES}: return None",
                f"{var} = bytes(memoryview({var}))")
    elif fm.split:
        if typing.get_origin(rule.base) is not tuple or len(rule.args) != width or \
                rule.min_len is not None or rule.max_len is not None or rule.before:
            raise _Unsupported("split")
        src.add(ind, f"if (type({var}) is not tuple and type({var}) is not list) or "
                f"len({var}) != {width}: return None")
        for k, elem in enumerate(rule.args):
            x = f"x{n}_{k}"
            src.add(ind, f"{x} = {var}[{k}]")
            _scalar(src, elem, ind, x)
    elif rule.base in (str, int, float, bool):
        _scalar(src, rule, ind, var)
    elif isinstance(rule.base, type) and fm.encode is not None and not (
            rule.bounds or rule.min_len is not None or rule.max_len is not None):
        # an arbitrary type (a Vector's numpy array): its before validators, the
        # isinstance check pydantic makes, the codec's own encoder
        for fn in rule.before:
            src.add(ind, f"{var} = {src.name('bv', fn)}({var})")
        src.add(ind, f"if not isinstance({var}, {src.name('cls', rule.base)}): return None",
                f"{var} = {src.name('enc', fm.encode)}({var})")
    else:
        raise _Unsupported(f"type {rule.base!r}")
    return outs


def _model_ok(model: type[BaseModel]) -> None:
    config = model.model_config
    if set(config) - _CONFIG or config.get("extra") == "allow":
        raise _Unsupported("model_config")
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.root_validators or \
            decorators.validators or model.__pydantic_post_init__:
        raise _Unsupported("model validators")
    if not getattr(model.__init__, "__pydantic_base_init__", False):
        raise _Unsupported("custom __init__")
    if any(f.alias or f.validation_alias for f in model.model_fields.values()):
        raise _Unsupported("aliases")


def _field_validators(model: type[BaseModel], name: str) -> list[Any]:
    out = []
    for dec in model.__pydantic_decorators__.field_validators.values():
        if name not in dec.info.fields and "*" not in dec.info.fields:
            continue
        if dec.info.mode != "before" or len(inspect.signature(dec.func).parameters) != 1:
            raise _Unsupported(f"validator of {name}")
        out.append(dec.func)
    return out[::-1]  # pydantic runs the one defined last first


Fast = Callable[..., list[Any] | None]


def _compile(model: type[BaseModel], codec: Codec[Any]) -> tuple[Fast, Fast]:
    _model_ok(model)
    names = list(model.model_fields)
    src = _Source()
    outs: list[str] = []
    src.env.update({"MISSING": MISSING, "SURR": _SURROGATE, "JCHECK": jsonvalue._check,
                    "FLAT": _flat_json,
                    "DUMPS": orjson.dumps})
    for n, (name, fm) in enumerate(zip(names, codec.fields, strict=True)):
        outs += _field(src, n, model.model_fields[name], fm, _field_validators(model, name))
    start, end = src.pattern_checks()
    body = ["    miss = 0",
            *start, *src.lines, *end,
            f"    if given + miss != {len(names)}: return None",  # unknown fields
            f"    return [{', '.join(outs)}]", "  except Exception:", "    return None"]
    args = ", ".join(f"v{n}" for n in range(len(names)))
    gets = [f"    v{n} = g({name!r}, MISSING)" for n, name in enumerate(names)]
    source = [f"def fast(given, {args}):", "  try:", *body,
              "def fast_row(row):", "  try:", "    g = row.get", "    given = len(row)",
              *gets, *body]
    run_source(source, src.env)  # source built above from the model
    return src.env["fast"], src.env["fast_row"]


class RowCodec:
    """The fast path of one model's rows (see the module's documentation)."""

    def __init__(self, model: type[BaseModel], codec: Codec[Any]) -> None:
        self.model = model
        self.names: tuple[str, ...] = tuple(model.model_fields)
        self.why_slow = ""
        """Why the model has no fast path (empty when it has one)."""
        self.fast: Fast | None = None
        """The values of every field (:data:`MISSING` if not given) after the number
        of values given -> the stored values, or None."""
        self._fast_row: Fast | None = None
        try:
            self.fast, self._fast_row = _compile(model, codec)
        except _Unsupported as exc:
            self.why_slow = str(exc)

    def encode_row(self, row: Mapping[str, Any]) -> list[Any] | None:
        """``row``'s stored values, or None: build it with pydantic instead."""
        return None if self._fast_row is None else self._fast_row(row)

    def encode_columns(self, columns: Mapping[str, Sequence[Any]], length: int
                       ) -> Iterator[list[Any] | None]:
        """The stored values of each row of ``columns`` (equal-length sequences by field
        name), or None for a row to build with pydantic."""
        if self.fast is None:
            return iter([None] * length)
        cols = [columns.get(n, None) for n in self.names]
        return map(self.fast, repeat(len(columns), length),
                   *[repeat(MISSING, length) if c is None else c for c in cols])
