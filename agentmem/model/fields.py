"""Per-field storage hints and the id types, as ``typing.Annotated`` metadata.

These are declarations only (SQLModel-style): a model says *how* a field is
stored, the codec does the storing. Nothing here talks to a server.

    position: Annotated[tuple[float, float] | None, Split("position_x", "position_y")] = None
    details: Annotated[Any, AsJson()] = None
    embedding: Annotated[np.ndarray | None, Vector()] = None
    stored_at: Annotated[int | None, WriteTime()] = None
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, StringConstraints
from pydantic_core import core_schema

from agentmem.model import jsonvalue

ID_MAX_LENGTH = 64
ACTION_ID_MAX_LENGTH = 128
ACTION_TYPE_MAX_LENGTH = 20

# Python's \s is Unicode-aware, so every kind of whitespace is covered; the
# explicit ranges are the C0 and C1 control characters and DEL, and INVISIBLE the
# characters that print as nothing (soft hyphen, zero-width spaces and joiners, bidi
# controls, word joiner, byte order mark, interlinear annotations: Unicode's
# format characters) and lone surrogates: two ids that look the same are the same id.
INVISIBLE = ("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
             "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb")
SURROGATES = "\ud800-\udfff"
"""Lone surrogates (no UTF-8 key can hold one): refused by :func:`check_id` and the
write path; not in :data:`ID_PATTERN`, which pydantic's Rust regex engine cannot
hold (it would fall back to a slower engine for every id of every model)."""
FORBIDDEN = re.compile(r"[\s:{}\x00-\x1f\x7f-\x9f" + INVISIBLE + SURROGATES + "]")
_ASCII_FORBIDDEN = bytes(c for c in range(128) if FORBIDDEN.match(chr(c)))
"""The ASCII characters :data:`FORBIDDEN` matches, as bytes."""


def has_forbidden(text: str) -> bool:
    """Whether ``text`` holds a character :data:`FORBIDDEN` matches: for an ASCII text
    (most ids, joined by the thousand) by ``bytes.translate``, about a sixth of the
    regular expression's time; else by the expression."""
    if text.isascii():
        raw = text.encode()
        return len(raw.translate(None, _ASCII_FORBIDDEN)) != len(raw)
    return FORBIDDEN.search(text) is not None


def check_id(value: str, *, what: str = "id", max_length: int = ID_MAX_LENGTH) -> str:
    """Return ``value`` if it can be embedded in a key, else raise ``ValueError``.

    An id is 1..max_length characters with no ``:``, ``{``, ``}``, whitespace or
    control character, so it can neither add a key segment, nor open a Redis
    Cluster hash tag, nor collide with another key of the layout.
    """
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{what} is {len(value)} characters long; at most {max_length} allowed")
    bad = FORBIDDEN.search(value)
    if bad is not None:
        raise ValueError(
            f"{what} {value!r} contains {bad.group()!r}; ids may not contain ':', '{{', '}}', "
            "whitespace, control or invisible characters"
        )
    return value


def refuse_nul(value: str) -> str:
    """Return ``value`` unless it holds the NUL character, which a PostgreSQL text
    column cannot store (the archive would refuse the action's whole batch)."""
    if "\x00" in value:
        raise ValueError("contains the NUL character '\\x00', which the SQL archive "
                         "cannot store (PostgreSQL text columns refuse it)")
    return value


ID_PATTERN = r"^[^\s:{}\x00-\x1f\x7f-\x9f" + INVISIBLE + "]+$"
"""The id rule as a regular expression (checked natively by pydantic)."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
]
"""A string that can be part of a key (agent, simulation, target ids)."""

ActionId = Annotated[
    str, StringConstraints(min_length=1, max_length=ACTION_ID_MAX_LENGTH, pattern=ID_PATTERN)
]
"""An action id: an identifier of at most 128 characters (agent id + step + type)."""

ACTION_TYPE_PATTERN = r"^[^\s:{}\x00-\x1f\x7f-\x9f" + INVISIBLE + ".-]+$"
"""The id rule without ``-`` and ``.``: an action id's parts are separated by ``-``,
and ``.`` starts the suffix of a duplicate (``a1-5-move.1``)."""

ActionType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ACTION_TYPE_MAX_LENGTH, pattern=ACTION_TYPE_PATTERN),
]
"""An action type: an identifier of at most 20 characters (AgentFarm's String(20)),
without ``-`` or ``.``."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite (it may be a sorted-set score)."""

MAX_STEP = 2**53
"""Steps are sorted-set scores, which are doubles: integers are exact up to 2**53."""

Step = Annotated[int, Field(ge=0, le=MAX_STEP)]
"""A simulation step: a non-negative int that a sorted-set score holds exactly."""

NonNegativeInt = Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class Split:
    """Store a fixed-length tuple as one hash field per element."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", tuple(names))


@dataclass(frozen=True)
class AsJson:
    """Store any JSON value as JSON text; numpy scalars and arrays are converted.

    The hint also normalises the value when the model is validated (tuples
    become lists, numpy values plain numbers), so a model holds what it reads
    back, and a value JSON cannot hold is refused at construction.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(jsonvalue.normalize, handler(source))


@dataclass(frozen=True)
class Vector:
    """Store a 1-D numpy array as raw bytes (little-endian ``dtype``, not base64)."""

    dtype: str = "float32"
    dim: int | None = None


@dataclass(frozen=True)
class WriteTime:
    """Set to the server's clock (integer Unix seconds) when the record is written."""


@dataclass(frozen=True)
class StoredAs:
    """Store the field under another hash field name."""

    name: str
