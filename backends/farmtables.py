"""AgentFarm's database schema, both generations, as SQLAlchemy Core tables.

:func:`farm_tables` declares into a ``MetaData`` every table AgentFarm's own
``Base.metadata.create_all`` makes, with its column names and order, types,
nullability, primary and foreign keys, index names and client-side defaults:

- ``"current"``: AgentFarm at commit db2f8f27 (``agent_actions`` with
  ``module_type``/``module_id``; nine tables);
- ``"original"``: AgentFarm at commit 2e88b599, the generation the
  specification was written against (``agent_actions`` with
  ``state_before_id``, ..., ``agents.starvation_threshold``; twelve tables).

One deliberate difference: a ``Float(precision=N)`` column is ``DOUBLE
PRECISION`` on PostgreSQL (AgentFarm's would be a 4-byte ``REAL`` there, which
would round what agentmem stores); on SQLite the DDL is AgentFarm's, to the
character. Pure declarations: no I/O. See ``docs/archive.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeEngine

__all__ = ["GENERATIONS", "Generation", "farm_tables"]

Generation = Literal["current", "original"]
GENERATIONS: tuple[Generation, ...] = ("current", "original")
"""The AgentFarm schema generations an archive can have (the first is the default)."""

SIM = "simulations.simulation_id"
AGENT = "agents.agent_id"


def _now() -> datetime:
    return datetime.now(UTC)


def _f(precision: int | None = None) -> TypeEngine[float]:
    """AgentFarm's ``Float`` / ``Float(precision=N)`` (DOUBLE on PostgreSQL)."""
    if precision is None:
        return Float()
    return Float(precision=precision).with_variant(Double(), "postgresql")


def _sim_fk(nullable: bool = True) -> Column[str]:
    return Column("simulation_id", String(64), ForeignKey(SIM), nullable=nullable)


def _experiments(md: MetaData) -> None:
    Table(
        "experiments", md,
        Column("experiment_id", String(64), primary_key=True),
        Column("name", String(255), nullable=False),
        Column("description", String(4096), nullable=True),
        Column("hypothesis", String(2048), nullable=True),
        Column("creation_date", DateTime, default=_now),
        Column("last_updated", DateTime, default=_now, onupdate=_now),
        Column("status", String(50), default="planned"),
        Column("tags", JSON, nullable=True),
        Column("variables", JSON, nullable=True),
        Column("results_summary", JSON, nullable=True),
        Column("notes", String(4096), nullable=True),
    )


def _simulations(md: MetaData) -> None:
    Table(
        "simulations", md,
        Column("simulation_id", String(64), primary_key=True),
        Column("experiment_id", String(64), ForeignKey("experiments.experiment_id"),
               nullable=True),
        Column("start_time", DateTime, default=_now),
        Column("end_time", DateTime, nullable=True),
        Column("status", String(50), default="pending"),
        Column("parameters", JSON, nullable=False),
        Column("results_summary", JSON, nullable=True),
        Column("simulation_db_path", String(255), nullable=False),
    )


def _agents(md: MetaData, gen: Generation) -> None:
    starvation: list[SchemaItem] = \
        [Column("starvation_threshold", Integer)] if gen == "original" else []
    Table(
        "agents", md,
        _sim_fk(),
        Column("agent_id", String(64), primary_key=True),
        Column("birth_time", Integer),
        Column("death_time", Integer),
        Column("agent_type", String(50)),
        Column("position_x", _f(6)),
        Column("position_y", _f(6)),
        Column("initial_resources", _f(6)),
        Column("starting_health", _f(4)),
        *starvation,
        Column("genome_id", String(64)),
        Column("generation", Integer),
        Column("action_weights", JSON, nullable=True),
        Index("idx_agents_agent_type", "agent_type"),
        Index("idx_agents_birth_time", "birth_time"),
        Index("idx_agents_death_time", "death_time"),
    )


def _resource_states(md: MetaData, gen: Generation) -> None:
    Table(
        "resource_states", md,
        Column("id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer),
        Column("resource_id", Integer if gen == "original" else String(64)),
        Column("amount", _f()),
        Column("position_x", _f()),
        Column("position_y", _f()),
        Index("idx_resource_states_step_number", "step_number"),
        Index("idx_resource_states_resource_id", "resource_id"),
    )


def _simulation_config(md: MetaData) -> None:
    Table(
        "simulation_config", md,
        _sim_fk(),
        Column("config_id", Integer, primary_key=True),
        Column("timestamp", Integer, nullable=False),
        Column("config_data", String(4096), nullable=False),
    )


def _simulation_steps(md: MetaData, gen: Generation) -> None:
    counts: list[SchemaItem]
    combat: list[SchemaItem]
    if gen == "original":
        counts = [Column("system_agents", Integer), Column("independent_agents", Integer),
                  Column("control_agents", Integer)]
        combat = [
            Column("combat_encounters", Integer), Column("successful_attacks", Integer),
            Column("resources_shared", _f()),
            Column("resources_shared_this_step", _f(), default=0.0),
            Column("combat_encounters_this_step", Integer, default=0),
            Column("successful_attacks_this_step", Integer, default=0),
        ]
    else:
        counts = [Column("agent_type_counts", JSON)]
        combat = []
    Table(
        "simulation_steps", md,
        Column("step_number", Integer, nullable=False),
        _sim_fk(nullable=False),
        Column("total_agents", Integer),
        *counts,
        Column("total_resources", _f()),
        Column("average_agent_resources", _f()),
        Column("births", Integer),
        Column("deaths", Integer),
        Column("current_max_generation", Integer),
        Column("resource_efficiency", _f()),
        Column("resource_distribution_entropy", _f()),
        Column("average_agent_health", _f()),
        Column("average_agent_age", Integer),
        Column("average_reward", _f()),
        *combat,
        Column("genetic_diversity", _f()),
        Column("dominant_genome_ratio", _f()),
        Column("resources_consumed", _f(), default=0.0),
        PrimaryKeyConstraint("step_number", "simulation_id"),
        Index("idx_simulation_steps_step_number", "step_number"),
        Index("idx_simulation_steps_simulation_id", "simulation_id"),
    )


def _agent_states(md: MetaData, gen: Generation) -> None:
    later: list[SchemaItem] = [Column("starting_health", _f(4)),
                               Column("starvation_counter", Integer)] if gen == "current" else []
    Table(
        "agent_states", md,
        Column("id", String(128), primary_key=True, nullable=False),
        _sim_fk(),
        Column("step_number", Integer),
        Column("agent_id", String(64), ForeignKey(AGENT)),
        Column("position_x", _f()),
        Column("position_y", _f()),
        Column("position_z", _f()),
        Column("resource_level", _f()),
        Column("current_health", _f()),
        *later,
        Column("is_defending", Boolean),
        Column("total_reward", _f()),
        Column("age", Integer),
        Index("idx_agent_states_agent_id", "agent_id"),
        Index("idx_agent_states_step_number", "step_number"),
        Index("idx_agent_states_agent_step", "agent_id", "step_number"),
        sqlite_autoincrement=False,
    )


def _agent_actions(md: MetaData, gen: Generation) -> None:
    middle: list[SchemaItem]
    module: list[SchemaItem]
    if gen == "original":
        middle = [
            Column("action_target_id", String(64), ForeignKey(AGENT), nullable=True),
            Column("state_before_id", String(128), ForeignKey("agent_states.id"), nullable=True),
            Column("state_after_id", String(128), ForeignKey("agent_states.id"), nullable=True),
            Column("resources_before", _f(6), nullable=True),
            Column("resources_after", _f(6), nullable=True),
            Column("reward", _f(6), nullable=True),
            Column("details", String(1024), nullable=True),
        ]
        module = []
    else:
        middle = [
            Column("action_target_id", String(64), nullable=True),
            Column("reward", _f(6), nullable=True),
            Column("details", String(1024), nullable=True),
        ]
        module = [Column("module_type", String(50), nullable=True),
                  Column("module_id", String(64), nullable=True),
                  Index("idx_agent_actions_module_type", "module_type")]
    Table(
        "agent_actions", md,
        Column("action_id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer, nullable=False),
        Column("agent_id", String(64), ForeignKey(AGENT), nullable=False),
        Column("action_type", String(20), nullable=False),
        *middle,
        *module,
        Index("idx_agent_actions_step_number", "step_number"),
        Index("idx_agent_actions_agent_id", "agent_id"),
        Index("idx_agent_actions_action_type", "action_type"),
    )


def _health_incidents(md: MetaData) -> None:
    Table(
        "health_incidents", md,
        Column("incident_id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer, nullable=False),
        Column("agent_id", String(64), ForeignKey(AGENT), nullable=False),
        Column("health_before", _f(4)),
        Column("health_after", _f(4)),
        Column("cause", String(50), nullable=False),
        Column("details", String(512)),
        Index("idx_health_incidents_step_number", "step_number"),
        Index("idx_health_incidents_agent_id", "agent_id"),
    )


def _original_only(md: MetaData) -> None:
    """The three tables AgentFarm dropped after 2e88b599."""
    Table(
        "learning_experiences", md,
        Column("experience_id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer),
        Column("agent_id", String(64), ForeignKey(AGENT)),
        Column("module_type", String(50)),
        Column("module_id", String(64)),
        Column("action_taken", Integer),
        Column("action_taken_mapped", String(20)),
        Column("reward", _f(6)),
        Index("idx_learning_experiences_step_number", "step_number"),
        Index("idx_learning_experiences_agent_id", "agent_id"),
        Index("idx_learning_experiences_module_type", "module_type"),
    )
    Table(
        "reproduction_events", md,
        Column("event_id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer, nullable=False),
        Column("parent_id", String(64), ForeignKey(AGENT), nullable=False),
        Column("offspring_id", String(64), ForeignKey(AGENT), nullable=True),
        Column("success", Boolean, nullable=False),
        Column("parent_resources_before", _f(6), nullable=False),
        Column("parent_resources_after", _f(6), nullable=False),
        Column("offspring_initial_resources", _f(6), nullable=True),
        Column("failure_reason", String(255), nullable=True),
        Column("parent_generation", Integer, nullable=False),
        Column("offspring_generation", Integer, nullable=True),
        Column("parent_position_x", _f(), nullable=False),
        Column("parent_position_y", _f(), nullable=False),
        Column("timestamp", DateTime, nullable=False, default=_now),
        Index("idx_reproduction_events_step_number", "step_number"),
        Index("idx_reproduction_events_parent_id", "parent_id"),
        Index("idx_reproduction_events_success", "success"),
    )
    Table(
        "social_interactions", md,
        Column("interaction_id", Integer, primary_key=True),
        _sim_fk(),
        Column("step_number", Integer, nullable=False),
        Column("initiator_id", String(64), ForeignKey(AGENT), nullable=False),
        Column("recipient_id", String(64), ForeignKey(AGENT), nullable=False),
        Column("interaction_type", String(50), nullable=False),
        Column("subtype", String(50), nullable=True),
        Column("outcome", String(50), nullable=False),
        Column("resources_transferred", _f(6), nullable=True),
        Column("distance", _f(), nullable=True),
        Column("initiator_resources_before", _f(6), nullable=True),
        Column("initiator_resources_after", _f(6), nullable=True),
        Column("recipient_resources_before", _f(6), nullable=True),
        Column("recipient_resources_after", _f(6), nullable=True),
        Column("group_id", String(64), nullable=True),
        Column("details", JSON, nullable=True),
        Column("timestamp", DateTime, nullable=False, default=_now),
        Index("idx_social_interactions_step_number", "step_number"),
        Index("idx_social_interactions_initiator_id", "initiator_id"),
        Index("idx_social_interactions_recipient_id", "recipient_id"),
        Index("idx_social_interactions_interaction_type", "interaction_type"),
    )


def farm_tables(metadata: MetaData, generation: Generation = "current") -> MetaData:
    """Declare AgentFarm's tables of ``generation`` into ``metadata``; return it."""
    if generation not in GENERATIONS:
        raise ValueError(f"unknown AgentFarm schema generation {generation!r}: "
                         f"one of {', '.join(GENERATIONS)}")
    _experiments(metadata)
    _simulations(metadata)
    _agents(metadata, generation)
    _resource_states(metadata, generation)
    _simulation_config(metadata)
    _simulation_steps(metadata, generation)
    _agent_states(metadata, generation)
    _health_incidents(metadata)
    if generation == "original":
        _original_only(metadata)
    _agent_actions(metadata, generation)
    return metadata
