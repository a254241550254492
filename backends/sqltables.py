"""The tables of the SQL archive: AgentFarm's ``simulations``, ``agents`` and
``agent_actions`` and agentmem's side table ``agentmem_action_extras``
(SQLAlchemy Core), and how an action's ``details`` are split between them.
See ``docs/archive.md``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from agentmem.errors import InvalidInput
from agentmem.model import jsonvalue

__all__ = [
    "DETAILS_MAX_LENGTH",
    "OPTIONAL_ACTION_COLUMNS",
    "REQUIRED_ACTION_COLUMNS",
    "action_extras",
    "agent_actions",
    "agents",
    "metadata",
    "simulations",
    "split_details",
]

DETAILS_MAX_LENGTH = 1024
"""Characters of JSON text that ``agent_actions.details`` holds (AgentFarm's String(1024))."""




def _real() -> TypeEngine[float]:
    # AgentFarm declares Float(precision=6); on PostgreSQL that is a 4-byte REAL,
    # which would round what agentmem stores, so a created archive uses DOUBLE there.
    return Float(precision=6).with_variant(Double(), "postgresql")


metadata = MetaData()

simulations = Table(
    "simulations",
    metadata,
    Column("simulation_id", String(64), primary_key=True),
    Column("experiment_id", String(64), nullable=True),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
    Column("status", String(50), nullable=True, default="pending"),
    Column("parameters", JSON, nullable=False),
    Column("results_summary", JSON, nullable=True),
    Column("simulation_db_path", String(255), nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("simulation_id", String(64), ForeignKey("simulations.simulation_id"), nullable=True),
    Column("birth_time", Integer, nullable=True),
    Column("death_time", Integer, nullable=True),
    Column("agent_type", String(50), nullable=True),
    Column("position_x", _real(), nullable=True),
    Column("position_y", _real(), nullable=True),
    Column("initial_resources", _real(), nullable=True),
    Column("starting_health", _real(), nullable=True),
    Column("genome_id", String(64), nullable=True),
    Column("generation", Integer, nullable=True),
    Column("action_weights", JSON, nullable=True),
)

agent_actions = Table(
    "agent_actions",
    metadata,
    Column("action_id", Integer, primary_key=True, autoincrement=True),
    Column("simulation_id", String(64), ForeignKey("simulations.simulation_id"), nullable=True),
    Column("step_number", Integer, nullable=False),
    Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False),
    Column("action_type", String(20), nullable=False),
    Column("action_target_id", String(64), nullable=True),
    Column("state_before_id", String(128), nullable=True),
    Column("state_after_id", String(128), nullable=True),
    Column("resources_before", _real(), nullable=True),
    Column("resources_after", _real(), nullable=True),
    Column("reward", _real(), nullable=True),
    Column("details", String(DETAILS_MAX_LENGTH), nullable=True),
    Column("module_type", String(50), nullable=True),
    Column("module_id", String(64), nullable=True),
    Index("idx_agent_actions_step_number", "step_number"),
    Index("idx_agent_actions_agent_id", "agent_id"),
    Index("idx_agent_actions_action_type", "action_type"),
    Index("idx_agent_actions_module_type", "module_type"),
)

action_extras = Table(
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
