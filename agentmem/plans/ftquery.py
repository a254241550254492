"""A typed query builder for the Query Engine (``FT.SEARCH`` / ``FT.AGGREGATE``); pure.

``Q.reward > 0.5``, ``Q.action_type == "move"``, ``Q.step_number.between(100, 200)``,
``Q.details.matches("gold")`` are :class:`Condition` values, combined with ``&``,
``|`` and ``~`` (redis-om's expression style). :meth:`Condition.render` gives the
query string in dialect 2; every user value is escaped there (tags and words
character by character, numbers formatted from checked ``int``/``float`` values), so
no input can change the query's structure.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agentmem.errors import InvalidInput

Kind = Literal["tag", "numeric", "text"]

__all__ = ["Condition", "Field", "Q", "QueryFields", "SortKey", "escape_tag", "escape_word",
           "sort_key", "tag_value"]

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_\x80-\U0010ffff]")


def escape_tag(value: str) -> str:
    """A tag value for ``@field:{...}``: every ASCII character but letters, digits and
    ``_`` is backslash-escaped (spaces, ``|``, ``}``, ``-``, ``*``, ``\\`` ...)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"a tag value must be a non-empty string, got {value!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"a tag value may not contain control characters: {value!r}")
    return _NOT_PLAIN.sub(lambda m: "\\" + m.group(), value)


def tag_value(value: str) -> str:
    """A tag value to match exactly, escaped (:func:`escape_tag`). The server indexes a
    tag without its leading and trailing spaces, so a value with such spaces could
    never be matched exactly: refused."""
    if isinstance(value, str) and value != value.strip(" "):
        raise InvalidInput(f"a tag value with leading or trailing spaces cannot be matched "
                           f"exactly (the server indexes tags without them): {value!r}")
    return escape_tag(value)


def escape_word(word: str) -> str:
    """One word of a text search, escaped as :func:`escape_tag` escapes a tag."""
    return escape_tag(word)


def _number(value: object, what: str) -> str:
    """``value`` as query text: converted to an exact ``int`` or ``float`` first (so a
    subclass's ``repr``/``str`` never reaches the query; numpy numbers are accepted),
    then formatted by ``int``'s and ``float``'s own methods."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{what} must be a number, got {value!r}")
    try:
        if isinstance(value, numbers.Integral):
            return int.__repr__(int(value))
        num = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"{what} must be a number, got {value!r}: {exc}") from None
    if math.isnan(num):
        raise InvalidInput(f"{what} must not be NaN")
    if math.isinf(num):
        return "+inf" if num > 0 else "-inf"
    return float.__repr__(num)


class Condition:
    """A query condition; ``a & b`` (both), ``a | b`` (either), ``~a`` (not)."""

    def render(self) -> str:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return _Join("and", (self, _check(other)))

    def __or__(self, other: Condition) -> Condition:
        return _Join("or", (self, _check(other)))

    def __invert__(self) -> Condition:
        return _Not(self)

    def __bool__(self) -> bool:
        raise InvalidInput("a query condition has no truth value: combine conditions with "
                           "&, | and ~, not with and, or and not (or a chained comparison)")

    def __repr__(self) -> str:
        return f"<Condition {self.render()}>"


def _check(c: object) -> Condition:
    if not isinstance(c, Condition):
        raise InvalidInput(f"expected a query condition (e.g. Q.reward > 0.5), got {c!r}")
    return c


@dataclass(frozen=True, repr=False, eq=False)
class _Leaf(Condition):
    text: str

    def render(self) -> str:
        return self.text


@dataclass(frozen=True, repr=False, eq=False)
class _Join(Condition):
    op: Literal["and", "or"]
    parts: tuple[Condition, ...]

    def render(self) -> str:
        sep = " " if self.op == "and" else " | "
        return "(" + sep.join(p.render() for p in self.parts) + ")"


@dataclass(frozen=True, repr=False, eq=False)
class _Not(Condition):
    inner: Condition

    def render(self) -> str:
        return "-(" + self.inner.render() + ")"


@dataclass(frozen=True, eq=False)
class Field:
    """A field of the action index: a tag, a number or text (see ``Q``)."""

    name: str
    kind: Kind
    sortable: bool = False

    def _need(self, *kinds: Kind) -> None:
        if self.kind not in kinds:
            raise InvalidInput(f"{self.name} is a {self.kind} field; this comparison needs "
                               f"a {' or '.join(kinds)} field")

    def _range(self, lo: str, hi: str) -> Condition:
        return _Leaf(f"@{self.name}:[{lo} {hi}]")

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        if self.kind == "numeric":
            n = _number(value, self.name)
            return self._range(n, n)
        if self.kind == "text":
            raise InvalidInput(f"{self.name} is a text field: use .matches(words)")
        if not isinstance(value, str):
            raise InvalidInput(f"{self.name} takes a string, got {value!r}")
        return self.isin([value])

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return ~(self == value)

    def __hash__(self) -> int:
        return hash((self.name, self.kind))

    def __gt__(self, value: float) -> Condition:
        self._need("numeric")
        return self._range("(" + _number(value, self.name), "+inf")

    def __ge__(self, value: float) -> Condition:
        self._need("numeric")
        return self._range(_number(value, self.name), "+inf")

    def __lt__(self, value: float) -> Condition:
        self._need("numeric")
        return self._range("-inf", "(" + _number(value, self.name))

    def __le__(self, value: float) -> Condition:
        self._need("numeric")
        return self._range("-inf", _number(value, self.name))

    def between(self, lo: float | None, hi: float | None) -> Condition:
        """``lo <= field <= hi``; ``None`` leaves that side open."""
        self._need("numeric")
        return self._range("-inf" if lo is None else _number(lo, self.name),
                           "+inf" if hi is None else _number(hi, self.name))

    def isin(self, values: Iterable[str]) -> Condition:
        """The tag is one of ``values`` (at least one)."""
        self._need("tag")
        if isinstance(values, str):
            values = [values]
        vals = [tag_value(v) for v in values]
        if not vals:
            raise InvalidInput(f"{self.name}.isin needs at least one value")
        return _Leaf(f"@{self.name}:{{{' | '.join(vals)}}}")

    def matches(self, words: str) -> Condition:
        """Every word of ``words`` occurs in the text (case-insensitive for ASCII
        letters only, no stemming; split at whitespace and punctuation, as the server
        tokenises the stored text)."""
        self._need("text")
        if not isinstance(words, str):
            raise InvalidInput(f"{self.name}.matches takes a string, got {words!r}")
        parts = [w for w in re.split(r"[^\w]+", words) if w]
        if not parts:
            raise InvalidInput(f"{self.name}.matches needs at least one word, got {words!r}")
        return _Leaf(f"@{self.name}:(" + " ".join(escape_word(w) for w in parts) + ")")

    @property
    def asc(self) -> SortKey:
        return SortKey(self, False)

    @property
    def desc(self) -> SortKey:
        return SortKey(self, True)


@dataclass(frozen=True)
class SortKey:
    """Sort by ``field``, descending when ``descending``."""

    field: Field
    descending: bool


class QueryFields:
    """The queryable fields of an action (``Q``): tags, numbers and ``details`` text."""

    action_id = Field("action_id", "tag", sortable=True)
    agent_id = Field("agent_id", "tag")
    simulation_id = Field("simulation_id", "tag")
    action_type = Field("action_type", "tag")
    action_target_id = Field("action_target_id", "tag")
    state_before_id = Field("state_before_id", "tag")
    state_after_id = Field("state_after_id", "tag")
    module_type = Field("module_type", "tag")
    module_id = Field("module_id", "tag")
    step_number = Field("step_number", "numeric", sortable=True)
    reward = Field("reward", "numeric", sortable=True)
    resources_before = Field("resources_before", "numeric", sortable=True)
    resources_after = Field("resources_after", "numeric", sortable=True)
    position_x = Field("position_x", "numeric", sortable=True)
    position_y = Field("position_y", "numeric", sortable=True)
    stored_at = Field("stored_at", "numeric", sortable=True)
    details = Field("details", "text")

    @classmethod
    def all(cls) -> tuple[Field, ...]:
        return tuple(v for v in vars(cls).values() if isinstance(v, Field))

    @classmethod
    def get(cls, name: str) -> Field:
        f = vars(cls).get(name)
        if not isinstance(f, Field):
            known = ", ".join(x.name for x in cls.all())
            raise InvalidInput(f"unknown query field {name!r}; the fields are {known}")
        return f


Q = QueryFields()
"""The fields of the action index, for conditions: ``Q.reward > 0.5``."""


def sort_key(value: str | SortKey | Field) -> SortKey:
    """``"-reward"`` / ``"reward"`` / ``Q.reward.desc`` / ``Q.reward`` as a
    :class:`SortKey` of a sortable field."""
    if isinstance(value, SortKey):
        key = value
    elif isinstance(value, Field):
        key = SortKey(value, False)
    elif isinstance(value, str):
        # one optional sign: "--reward" or "+-reward" is no field name
        sign = value[:1] if value.startswith(("-", "+")) else ""
        key = SortKey(QueryFields.get(value[len(sign):]), sign == "-")
    else:
        raise InvalidInput(f"sort_by takes a field name ('-reward'), got {value!r}")
    if not key.field.sortable:
        names = ", ".join(f.name for f in QueryFields.all() if f.sortable)
        raise InvalidInput(f"cannot sort by {key.field.name}; sortable fields: {names}")
    return key


def negated(conditions: Iterable[Condition]) -> bool:
    """Whether any of ``conditions`` holds a negation (``~c``, ``!=``) anywhere."""
    todo = list(conditions)
    while todo:
        c = todo.pop()
        if isinstance(c, _Not):
            return True
        if isinstance(c, _Join):
            todo += c.parts
    return False


def render(conditions: Iterable[Condition]) -> str:
    """The query string of all ``conditions`` together (``*``: every action)."""
    parts = [_check(c).render() for c in conditions]
    return " ".join(parts) if parts else "*"
