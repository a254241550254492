"""Domain models: :class:`Action` and its compressed intermediate form :class:`IMAction`.

Pure pydantic v2 value objects with per-field storage hints (see
:mod:`agentmem.model.fields`); how they map onto keys is declared in
:mod:`agentmem.plans.keyspace`, and nothing here talks to a server.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
from types import UnionType
from typing import Annotated, Any, ClassVar, Self, Union, get_args, get_origin

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from agentmem.errors import InvalidInput
from agentmem.model.explain import explain
from agentmem.model.fields import (
    ActionId,
    ActionType,
    AsJson,
    FiniteFloat,
    Identifier,
    Split,
    Step,
    Vector,
    WriteTime,
    refuse_nul,
)


def _float32_vector(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        raise ValueError(
            f"embedding must be a numpy array of float32, got {type(value).__name__}; "
            "use np.asarray(values, dtype=np.float32)"
        )
    if value.dtype != np.float32:
        raise ValueError(f"embedding must have dtype float32, got {value.dtype}")
    if value.ndim != 1 or value.size == 0:
        raise ValueError(f"embedding must be a non-empty 1-D vector, got shape {value.shape}")
    if not np.isfinite(value).all():
        raise ValueError("embedding contains NaN or infinite values")
    return value


Float32Vector = Annotated[
    np.ndarray,
    BeforeValidator(_float32_vector),
    PlainSerializer(lambda v: v.tolist(), when_used="json"),
    Vector("float32"),
]


def _holds_numbers(annotation: Any) -> bool:
    """Whether a field's type is a number, a tuple of numbers, or either optional."""
    if annotation in (int, float):
        return True
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _holds_numbers(args[0])
    if origin is tuple or origin in (Union, UnionType):
        return bool(args) and all(_holds_numbers(a) or a is Ellipsis for a in args)
    return False


_NP_BOOL = np.bool_
_SUSPECT = frozenset({np.bool_, tuple, list})
"""Types of a number field's value that may hide a bool (checked further)."""


def _refuse_bools(cls: type, name: str, value: Any) -> None:
    """Raise when ``value`` is a bool, or a sequence holding one (``position``)."""
    items = value if isinstance(value, tuple | list) else (value,)
    if any(isinstance(v, bool | np.bool_) for v in items):
        raise InvalidInput(f"invalid {cls.__name__}: {name}: a number is expected, not a "
                           f"bool ({value!r})")


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b))
        )
    return bool(a == b)


class Record(BaseModel):
    """Base for storable models: frozen values that may hold numpy arrays.

    Subclassing it is optional; any pydantic model can be declared. It gives
    value equality that works when a field holds a numpy array.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    _number_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that hold numbers (or tuples of numbers): a bool is refused there."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._number_fields = tuple(name for name, f in cls.model_fields.items()
                                   if _holds_numbers(f.annotation))

    def __init__(self, /, **data: Any) -> None:
        for name in self._number_fields:  # one pass, not a Python validator per field
            value = data.get(name)
            if value is True or value is False or type(value) is _NP_BOOL:
                _refuse_bools(type(self), name, value)
            elif type(value) is tuple or type(value) is list:
                for v in value:
                    if v is True or v is False or type(v) is _NP_BOOL:
                        _refuse_bools(type(self), name, value)
        try:
            super().__init__(**data)
        except ValidationError as exc:  # one error root: InvalidInput (a ValueError)
            raise InvalidInput(explain(exc)) from exc

    # pydantic treats an overridden __init__ as custom and then validates through it
    # on every path (twice the cost of a construction); this one only checks and
    # translates, so pydantic may keep its own fast path.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """pydantic's ``model_validate``; a value that does not validate raises
        :class:`~agentmem.errors.InvalidInput` (pydantic's error is its cause)."""
        if isinstance(obj, dict):
            for name in cls._number_fields:
                value = obj.get(name)
                if value is True or value is False or type(value) in _SUSPECT:
                    _refuse_bools(cls, name, value)
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise InvalidInput(explain(exc)) from exc

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Record)
        mine, theirs = self.__dict__, other.__dict__
        return mine.keys() == theirs.keys() and all(
            _values_equal(v, theirs[k]) for k, v in mine.items()
        )

    __hash__ = None  # type: ignore[assignment]


class Action(Record):
    """One action of one agent at one step (section 3.2 of the schema).

    ``action_id`` and ``stored_at`` are filled in by the repository on write:
    the id is ``{agent_id}-{step_number}-{action_type}``, with ``.1``, ``.2`` …
    appended when the same agent takes the same type of action twice in a step.
    """

    agent_id: Identifier
    simulation_id: Identifier
    step_number: Step
    action_type: ActionType
    action_id: ActionId | None = None
    action_target_id: Identifier | None = None
    state_before_id: Annotated[str | None, Field(max_length=128)] = None
    state_after_id: Annotated[str | None, Field(max_length=128)] = None
    resources_before: FiniteFloat | None = None
    resources_after: FiniteFloat | None = None
    reward: FiniteFloat | None = None
    details: Annotated[Any, AsJson()] = None
    position: Annotated[
        tuple[FiniteFloat, FiniteFloat] | None, Split("position_x", "position_y")
    ] = None
    embedding: Float32Vector | None = None
    module_type: Annotated[str | None, Field(max_length=50)] = None
    module_id: Annotated[str | None, Field(max_length=64)] = None
    stored_at: Annotated[int | None, WriteTime()] = None

    @field_validator("action_type", mode="before")
    @classmethod
    def _type_to_str(cls, value: Any) -> Any:
        # AgentFarm str()-s non-string action types (enums); so do we.
        if value is not None and not isinstance(value, str):
            return str(getattr(value, "value", value))
        return value

    @field_validator("state_before_id", "state_after_id", "module_type", "module_id",
                     mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # ids are refused NUL by their pattern; these free texts need it checked
        # ("before": the row fast path, agentmem.model.rowcodec, runs it too)
        return refuse_nul(value) if isinstance(value, str) else value


class IMAction(Record):
    """The compressed intermediate-memory form of an action (section 6)."""

    action_id: ActionId
    agent_id: Identifier
    simulation_id: Identifier
    step_number: Step
    action_type: ActionType
    reward: FiniteFloat | None = None
    """The action's reward to 6 significant digits; None when it had none (IM data
    written before this was optional may hold ``0`` for a missing reward)."""
    importance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    action_target_id: Identifier | None = None


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (``1`` is not ``1.0``; ``-0.0`` is not ``0.0``)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, np.ndarray):
        return _values_equal(a, b)
    if type(a) is list or type(a) is tuple:
        return len(a) == len(b) and all(map(_same, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return bool(a == b)


_F32 = struct.Struct("<f")


def _same_float32(a: float, b: float) -> bool:
    """Whether ``b`` is ``a`` as a float32 column (PostgreSQL ``REAL``) stores it: the same
    float32 (sign of zero included), or, ``a`` lying exactly halfway between two float32s,
    either of them (a decimal text may round the other way than the double does)."""
    try:
        fa, fb = (_F32.unpack(_F32.pack(v))[0] for v in (a, b))
    except OverflowError:  # beyond float32: no REAL column holds it
        return a == b
    return (fa == fb and math.copysign(1.0, fa) == math.copysign(1.0, fb)) or (
        fa != fb and abs(a - fa) == abs(a - fb))


def same_action(a: Action, b: Action, *, float32: Collection[str] = ()) -> bool:
    """Whether two actions are the same action: equal in every field but the write
    time (which a replay or a re-archive sets anew), exactly (values and types:
    ``details`` ``1`` is not ``1.0``; the sign of zero counts), but for the fields
    named in ``float32``, which are compared as the float32 a ``REAL`` column keeps
    (:attr:`~agentmem.backends.sql.Archive.float32_fields`: an AgentFarm archive on
    PostgreSQL)."""
    mine, theirs = a.__dict__, b.__dict__
    if mine.keys() != theirs.keys():
        return False
    for k, v in mine.items():
        w = theirs[k]
        if k == "stored_at":
            continue
        if k in float32 and type(v) is float and type(w) is float:
            if not _same_float32(v, w):
                return False
        elif not _same(v, w):
            return False
    return True
