"""The tables of the SQL archive: AgentFarm's tables of either generation
(:mod:`agentmem.backends.farmtables`) and agentmem's side table
``agentmem_action_extras`` (SQLAlchemy Core), and how an action's ``details``
are split between them. See ``docs/archive.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from agentmem.backends.farmtables import GENERATIONS, Generation, farm_tables
from agentmem.errors import InvalidInput
from agentmem.model import jsonvalue

__all__ = [
    "DETAILS_MAX_LENGTH",
    "OPTIONAL_ACTION_COLUMNS",
    "REQUIRED_ACTION_COLUMNS",
    "SCHEMAS",
    "action_extras",
    "agent_actions",
    "agentfarm_details",
    "agents",
    "metadata",
    "simulations",
    "split_details",
]

DETAILS_MAX_LENGTH = 1024
"""Characters of JSON text that ``agent_actions.details`` holds (AgentFarm's String(1024))."""




def _with_side_table(metadata: MetaData) -> MetaData:
    """Add agentmem's side table ``agentmem_action_extras`` to AgentFarm's tables."""
    Table(
        "agentmem_action_extras",
        metadata,
        Column("row_id", Integer, ForeignKey("agent_actions.action_id"), primary_key=True,
               autoincrement=False),
        Column("simulation_id", String(64), nullable=False),
        Column("agent_id", String(64), nullable=False),
        Column("action_id", String(128), nullable=False),
        Column("position_x", Double(), nullable=True),
        Column("position_y", Double(), nullable=True),
        Column("embedding", LargeBinary, nullable=True),
        Column("stored_at", BigInteger, nullable=True),
        Column("details_full", Text, nullable=True),
        Column("extra_fields", Text, nullable=True),
        UniqueConstraint("simulation_id", "agent_id", "action_id",
                         name="uq_agentmem_action_extras_action"),
    )
    return metadata


SCHEMAS: dict[Generation, MetaData] = {
    gen: _with_side_table(farm_tables(MetaData(), gen)) for gen in GENERATIONS}
"""Per AgentFarm generation, its tables plus agentmem's side table (one ``MetaData`` each)."""

metadata = SCHEMAS["current"]
"""The tables of an archive agentmem creates by default: AgentFarm's current generation."""
simulations = metadata.tables["simulations"]
agents = metadata.tables["agents"]


def _reading_table() -> Table:
    """``agent_actions`` with the columns of both generations, for building statements
    (never created): a statement names only the columns the database has
    (:attr:`~agentmem.backends.sql.Archive.action_columns`)."""
    current = metadata.tables["agent_actions"]
    original = SCHEMAS["original"].tables["agent_actions"]
    columns = [*current.columns, *(c for c in original.columns if c.name not in current.columns)]
    return Table("agent_actions", MetaData(),
                 *(Column(c.name, c.type, primary_key=c.primary_key) for c in columns))


agent_actions = _reading_table()
"""``agent_actions`` for reads: every column of either generation (see above)."""
action_extras = metadata.tables["agentmem_action_extras"]

REQUIRED_ACTION_COLUMNS = ("action_id", "simulation_id", "step_number", "agent_id", "action_type")
OPTIONAL_ACTION_COLUMNS = (
    "action_target_id", "state_before_id", "state_after_id", "resources_before",
    "resources_after", "reward", "details", "module_type", "module_id",
)
"""Action fields stored in ``agent_actions`` columns when the table has them; a field
whose column the table lacks (e.g. ``module_type`` in the old generation) is kept in
``agentmem_action_extras.extra_fields`` instead."""


def _details_marker(length: int) -> str:
    return json.dumps(
        {"agentmem_details": "agentmem_action_extras.details_full", "length": length},
        separators=(",", ":"),
    )


def agentfarm_details(limit: int | None) -> Callable[[Any], tuple[str | None, str | None]]:
    """A :func:`split_details` that writes AgentFarm's text: ``json.dumps(details)``
    (its spacing, non-ASCII escaped). ``limit``: the length the database enforces
    (``None`` on SQLite, where AgentFarm's full text stays in the column)."""

    encode = json.JSONEncoder(allow_nan=False).encode  # json.dumps's text, built once

    def split(details: Any) -> tuple[str | None, str | None]:
        if details is None:
            return None, None
        try:
            text = encode(details)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"details cannot be written as JSON: {exc}") from None
        if limit is None or len(text) <= limit:
            return text, None
        return _details_marker(len(text)), text

    return split


def split_details(details: Any) -> tuple[str | None, str | None]:
    """The ``(details column, details_full column)`` values for an action's details.

    JSON text of at most :data:`DETAILS_MAX_LENGTH` characters goes into
    ``agent_actions.details`` as it is. Longer text goes whole into
    ``agentmem_action_extras.details_full`` and ``details`` holds a short marker
    object ``{"agentmem_details": "agentmem_action_extras.details_full", "length": N}``
    (N characters), so nothing is cut and both engines store the same values.
    """
    if details is None:
        return None, None
    try:
        text = jsonvalue.dumps(details).decode("utf-8")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if len(text) <= DETAILS_MAX_LENGTH:
        return text, None
    return _details_marker(len(text)), text
