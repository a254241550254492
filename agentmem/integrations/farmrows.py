"""The rows AgentFarm's ``DataLogger`` writes besides ``agent_actions``, and writing them.

Each ``*_row(s)`` function returns the mapping AgentFarm's logger builds for the
same call (same keys, same values, same JSON text), so the archive holds the
rows AgentFarm's would; :func:`insert` writes a batch of them in one
transaction. ``agents`` rows replace the bare parent row the archive writes
for an action whose agent was not logged yet (:func:`insert_agents`). Every
write is a write transaction from its start (SQLite: ``BEGIN IMMEDIATE``), so
several processes share one archive file. With ``database=``,
:mod:`~agentmem.integrations.farmsession` writes the same rows through
AgentFarm's database object instead. See ``docs/agentfarm.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, and_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from agentmem.backends.sql import Archive, backend_error
from agentmem.backends.sqlwrite import WRITE_ATTEMPTS, contended, pause, unique_violation
from agentmem.errors import BackendError, InvalidInput

__all__ = [
    "AGENT_REQUIRED",
    "agent_columns",
    "agent_row",
    "agent_state_rows",
    "bare_agents",
    "ensure_simulation",
    "fit",
    "health_row",
    "id_text",
    "insert",
    "insert_agents",
    "learning_row",
    "plain",
    "referenced_agents",
    "reproduction_row",
    "resource_rows",
    "step_row",
    "unknown_agents",
]

AGENT_REQUIRED = ("agent_id", "birth_time", "agent_type", "position", "initial_resources",
                  "starting_health")
"""The keys every ``log_agents_batch`` entry must have (AgentFarm's ``ValueError``)."""

_BARE = ("birth_time", "death_time", "agent_type", "position_x", "position_y",
         "initial_resources", "starting_health", "genome_id", "generation", "action_weights")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def id_text(value: Any) -> Any:
    """An id AgentFarm's ``String`` column would hold: ints and numpy values as text."""
    if value is None or isinstance(value, str):
        return value
    return str(plain(value))


def json_text(value: Any) -> str | None:
    """``json.dumps(value)`` as AgentFarm writes it, ``None`` for an empty value;
    numpy scalars and arrays become plain numbers and lists (AgentFarm would raise)."""
    if not value:
        return None
    try:
        return json.dumps(value, default=_numpy_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"details cannot be written as JSON: {exc}") from None


def _numpy_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def agent_row(simulation_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An ``agents`` row from one ``log_agents_batch`` entry (``log_agent``'s keys)."""
    for name in AGENT_REQUIRED:
        if name not in data:
            raise InvalidInput(f"Missing required field '{name}' in agent data")
    weights = data.get("action_weights")
    if weights is not None and not isinstance(weights, dict | str):
        weights = str(weights)
    position = data["position"]
    return {
        "simulation_id": data.get("simulation_id", simulation_id),
        "agent_id": id_text(data["agent_id"]),
        "birth_time": plain(data["birth_time"]),
        "agent_type": data["agent_type"],
        "position_x": plain(position[0]),
        "position_y": plain(position[1]),
        "initial_resources": plain(data["initial_resources"]),
        "starting_health": plain(data["starting_health"]),
        "genome_id": data.get("genome_id"),
        "generation": plain(data.get("generation", 0)),
        "action_weights": weights,
        "starvation_threshold": plain(data.get("starvation_threshold")),
    }


def serialized_weights(weights: Mapping[Any, Any] | None) -> Any:
    """``log_agent``'s ``action_weights``: ``{str(k): float(v)}``, or ``str()`` of it
    when that fails, as AgentFarm does."""
    if weights is None:
        return None
    try:
        out = {str(k): float(v) for k, v in weights.items()}
        json.loads(json.dumps(out))
        return out
    except Exception:
        return str(weights)


def agent_state_rows(id_prefix: str, step_number: int, agent_states: Sequence[Sequence[Any]],
                     simulation_id: str) -> list[dict[str, Any]]:
    """``agent_states`` rows of one ``log_step``: one per ``id``
    (``<id_prefix>:<agent>-<step>``, or ``<agent>-<step>`` without a prefix, as the
    original generation writes it), the last state of an agent winning."""
    rows: dict[str, dict[str, Any]] = {}
    for state in agent_states:
        agent_id = plain(state[0])
        state_id = f"{id_prefix}:{agent_id}-{step_number}" if id_prefix \
            else f"{agent_id}-{step_number}"
        rows[state_id] = {
            "simulation_id": simulation_id, "step_number": step_number,
            "agent_id": agent_id, "position_x": plain(state[1]),
            "position_y": plain(state[2]), "resource_level": plain(state[3]),
            "current_health": plain(state[4]), "starting_health": plain(state[5]),
            "starvation_counter": plain(state[6]), "is_defending": bool(state[7]),
            "total_reward": plain(state[8]), "age": plain(state[9]), "id": state_id,
        }
    return list(rows.values())


def resource_rows(simulation_id: str, step_number: int,
                  resource_states: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """``resource_states`` rows of one ``log_step``."""
    return [{"simulation_id": simulation_id, "step_number": step_number,
             "resource_id": plain(s[0]), "amount": plain(s[1]),
             "position_x": plain(s[2]), "position_y": plain(s[3])}
            for s in resource_states]


def step_row(table: Table, simulation_id: str, step_number: int,
             metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``simulation_steps`` row of one ``log_step`` (``resources_consumed``
    defaults to 0.0); a metric the table has no column for raises ``InvalidInput``
    (AgentFarm's model raises ``TypeError``)."""
    unknown = [k for k in metrics if k not in table.c or k in ("simulation_id", "step_number")]
    if unknown:
        raise InvalidInput(f"simulation_steps has no column for the metrics {unknown}")
    row = {k: plain(v) for k, v in metrics.items()}
    row.setdefault("resources_consumed", 0.0)
    return {"simulation_id": simulation_id, "step_number": step_number, **row}


def health_row(simulation_id: str, step_number: int, agent_id: str, health_before: float,
               health_after: float, cause: str, details: Any) -> dict[str, Any]:
    """A ``health_incidents`` row (``details`` as ``json.dumps`` text or ``NULL``)."""
    return {"simulation_id": simulation_id, "step_number": plain(step_number),
            "agent_id": agent_id, "health_before": plain(health_before),
            "health_after": plain(health_after), "cause": cause,
            "details": json_text(details)}


def learning_row(simulation_id: str, step_number: int, agent_id: str, module_type: str,
                 module_id: Any, action_taken: int, action_taken_mapped: str,
                 reward: float) -> dict[str, Any]:
    """A ``learning_experiences`` row (the original generation)."""
    return {"simulation_id": simulation_id, "step_number": plain(step_number),
            "agent_id": agent_id, "module_type": module_type, "module_id": plain(module_id),
            "action_taken": plain(action_taken), "action_taken_mapped": action_taken_mapped,
            "reward": plain(reward)}


def reproduction_row(simulation_id: str, step_number: int, parent_id: str,
                     offspring_id: str | None, success: bool, parent_resources_before: float,
                     parent_resources_after: float, offspring_initial_resources: float | None,
                     failure_reason: str | None, parent_generation: int,
                     offspring_generation: int | None,
                     parent_position: tuple[float, float]) -> dict[str, Any]:
    """A ``reproduction_events`` row (the original generation)."""
    return {"simulation_id": simulation_id, "step_number": plain(step_number),
            "parent_id": parent_id, "offspring_id": offspring_id, "success": success,
            "parent_resources_before": plain(parent_resources_before),
            "parent_resources_after": plain(parent_resources_after),
            "offspring_initial_resources": plain(offspring_initial_resources),
            "failure_reason": failure_reason, "parent_generation": plain(parent_generation),
            "offspring_generation": plain(offspring_generation),
            "parent_position_x": plain(parent_position[0]),
            "parent_position_y": plain(parent_position[1])}


def fit(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's values for the table's columns: a key the table lacks is left out,
    as AgentFarm's ``bulk_insert_mappings`` leaves it out (the other generation's)."""
    return {k: v for k, v in row.items() if k in table.c}


def _write(archive: Archive, work: Callable[[Connection], None], *,
           parents_raced: bool = False) -> None:
    """Run ``work`` in one write transaction of the archive: on SQLite it takes the write
    lock at ``BEGIN`` (``BEGIN IMMEDIATE``, waiting up to the busy timeout), so several
    processes on one file wait for each other instead of failing on a read lock's upgrade
    ("database is locked"). A PostgreSQL transaction that lost to other writers
    (serialization failure, deadlock), or with ``parents_raced`` one whose bare parent row
    another writer inserted after it looked, is run again, as ``Archive.write`` does."""
    races = 0
    while True:
        try:
            with archive._write_transaction() as conn:
                work(conn)
            return
        except IntegrityError as exc:
            if parents_raced and unique_violation(exc) and races < WRITE_ATTEMPTS:
                races += 1
                pause(races)
                continue
            raise backend_error(exc) from exc
        except OperationalError as exc:
            if contended(exc) and races < WRITE_ATTEMPTS:
                races += 1
                pause(races)
                continue
            raise backend_error(exc) from exc
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc


def agent_columns(table: Table) -> tuple[str, ...]:
    """The columns of ``table`` that reference ``agents.agent_id`` (a foreign key)."""
    return tuple(c.name for c in table.c
                 if any(fk.column.table.name == "agents" for fk in c.foreign_keys))


def referenced_agents(archive: Archive, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
                      ) -> dict[Any, Any]:
    """The agents the rows of ``batches`` reference (agent id as the text the column
    holds -> the row's simulation): ``7``, ``"7"`` and ``np.int64(7)`` are one agent, and
    a text column is never compared with an integer (PostgreSQL refuses that)."""
    out: dict[Any, Any] = {}
    for name, rows in batches:
        columns = agent_columns(archive.tables.tables[name])
        for r in rows:
            for c in columns:
                if r.get(c) is not None:
                    out.setdefault(id_text(r[c]), r.get("simulation_id"))
    return out


def insert(archive: Archive, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *,
           bare_parents: bool = False) -> None:
    """Insert ``(table name, rows)`` batches in one transaction (all or nothing).

    ``bare_parents``: an agent a row references (``health_incidents.agent_id``, ...) that
    has no ``agents`` row gets a bare one first (only its ids, as an archived action's
    agent gets), in the same transaction, so the rows cannot fail on the foreign key."""
    todo = [(archive.tables.tables[name], rows) for name, rows in batches if rows]
    if not todo:
        return
    parents = referenced_agents(archive, batches) if bare_parents else {}

    def work(conn: Connection) -> None:
        if parents:
            table = archive.tables.tables["agents"]
            known = {id_text(a) for a in _existing_agents(conn, table, parents)}
            missing = {a for a in parents if id_text(a) not in known}
            if missing:
                conn.execute(table.insert(), [
                    {"agent_id": a, "simulation_id": parents[a]}
                    for a in sorted(missing, key=str)])
        for table, rows in todo:
            conn.execute(table.insert(), [fit(table, r) for r in rows])

    _write(archive, work, parents_raced=bool(parents))


def _existing_agents(conn: Connection, table: Table, agent_ids: Iterable[Any]) -> set[Any]:
    ids = sorted(agent_ids, key=str)
    known: set[Any] = set()
    for start in range(0, len(ids), 500):
        known.update(r[0] for r in conn.execute(select(table.c.agent_id).where(
            table.c.agent_id.in_(ids[start:start + 500]))))
    return known


def unknown_agents(archive: Archive, agent_ids: set[Any]) -> set[Any]:
    """Those of ``agent_ids`` that have no ``agents`` row."""
    if not agent_ids:
        return set()
    table = archive.tables.tables["agents"]
    try:
        with archive.engine.connect() as conn:
            known = {id_text(a) for a in _existing_agents(conn, table, agent_ids)}
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
    return {a for a in agent_ids if id_text(a) not in known}


def ensure_simulation(archive: Archive, simulation_id: str) -> None:
    """Write the ``simulations`` row of ``simulation_id`` unless there is one (status
    ``pending``, no parameters, the archive's location as ``simulation_db_path``), in a
    write transaction: several loggers on one file wait for each other."""
    table = archive.tables.tables["simulations"]

    def work(conn: Connection) -> None:
        if conn.execute(select(table.c.simulation_id).where(
                table.c.simulation_id == simulation_id)).first() is None:
            conn.execute(table.insert(), [{
                "simulation_id": simulation_id, "parameters": {},
                "simulation_db_path": archive.location[:255]}])

    try:
        _write(archive, work)
    except BackendError as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
        # another logger wrote it first (PostgreSQL: after this one looked)


def insert_agents(archive: Archive, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``agents`` rows in one write transaction. A row the archive wrote bare (only
    ids: an action of the agent in the same simulation came first) is completed
    instead; an agent logged before, or brought by another simulation's action, raises
    ``BackendError``, as AgentFarm's insert fails."""
    if not rows:
        return
    table = archive.tables.tables["agents"]

    def work(conn: Connection) -> None:
        bare = _bare_agents(conn, table, {r["agent_id"]: r["simulation_id"] for r in rows})
        fresh = [fit(table, r) for r in rows if r["agent_id"] not in bare]
        if fresh:
            conn.execute(table.insert(), fresh)
        for r in rows:
            if r["agent_id"] in bare:
                conn.execute(update(table).where(table.c.agent_id == r["agent_id"])
                             .values({k: v for k, v in fit(table, r).items()
                                      if k != "agent_id"}))

    _write(archive, work)


def bare_agents(archive: Archive, simulations: Mapping[Any, Any]) -> set[Any]:
    """Those agents (agent id -> simulation id) the archive holds as bare parent rows of
    their simulation (read outside any transaction of the caller)."""
    if not simulations:
        return set()
    try:
        with archive.engine.connect() as conn:
            return _bare_found(conn, archive.tables.tables["agents"], simulations)
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc


def _bare_found(conn: Connection, table: Table, simulations: Mapping[Any, Any]) -> set[Any]:
    agent_ids = list(simulations)
    found: set[Any] = set()
    for start in range(0, len(agent_ids), 500):
        chunk = agent_ids[start:start + 500]
        found |= {r[0] for r in conn.execute(
            select(table.c.agent_id, table.c.simulation_id).where(and_(
                table.c.agent_id.in_(chunk),
                *(table.c[name].is_(None) for name in _BARE if name in table.c))))
            if r[1] == simulations.get(r[0])}
    return found


def _bare_agents(conn: Connection, table: Table, simulations: Mapping[Any, Any]) -> set[Any]:
    """Those agents (agent id -> simulation id) the table holds as bare parent rows
    of their simulation; another row of one of them raises ``BackendError``."""
    found = _bare_found(conn, table, simulations)
    agent_ids = list(simulations)
    if len(found) != len(agent_ids):
        taken = conn.execute(select(table.c.agent_id).where(
            table.c.agent_id.in_([a for a in agent_ids if a not in found]))).first()
        if taken is not None:
            raise BackendError(f"the agent {taken[0]!r} is logged already (agents.agent_id "
                               "is its primary key)")
    return found
