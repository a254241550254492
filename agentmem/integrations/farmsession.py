"""AgentFarm's rows written through AgentFarm's own database object (``database=``).

AgentFarm's ``DataLogger`` writes every row through its database's
``_execute_in_transaction(func)``, which calls ``func(session)`` with a SQLAlchemy
``Session`` in a transaction that it commits, retries and rolls back.
:class:`SessionWriter` writes the rows :mod:`~agentmem.integrations.farmrows` builds
the same way: ``session.bulk_insert_mappings(Model, rows)`` for ``agents``,
``agent_states``, ``resource_states``, ``health_incidents`` (and the original
generation's ``learning_experiences`` and ``reproduction_events``),
``session.add(step)`` for the ``simulation_steps`` row, so the database's own
transaction, retry and session events apply. The models are this module's: classes
mapped imperatively over the archive's own tables (:func:`models`, once per schema),
never AgentFarm's. What the writes read first (which agents have a row, which are
bare) is read from the archive, which is on the same database. See
``docs/agentfarm.md``.

May import: ``agentmem.backends``, ``agentmem.errors``,
``agentmem.integrations.farmrows``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, MetaData, Table, bindparam, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, registry
from sqlalchemy.sql.dml import Insert

from agentmem.backends.sql import Archive, backend_error
from agentmem.errors import ConfigError
from agentmem.integrations import farmrows

__all__ = ["FarmDatabase", "SessionWriter", "models"]

ROW_TABLES = ("agents", "agent_states", "resource_states", "simulation_steps",
              "health_incidents", "learning_experiences", "reproduction_events")
"""The tables :class:`SessionWriter` writes (those of the archive's generation)."""


class FarmDatabase(Protocol):
    """What ``database=`` must have: AgentFarm's ``SimulationDatabase`` method."""

    def _execute_in_transaction(self, func: Callable[[Session], Any]) -> Any: ...


class FarmRow:
    """A row of one of the archive's AgentFarm tables (a class per table: :func:`models`)."""

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


_models: dict[MetaData, dict[str, type[FarmRow]]] = {}
_models_lock = threading.Lock()


def models(metadata: MetaData) -> dict[str, type[FarmRow]]:
    """A class per table of :data:`ROW_TABLES` that ``metadata`` has, mapped imperatively
    over its ``Table`` (one registry per schema, made once and kept)."""
    with _models_lock:
        found = _models.get(metadata)
        if found is None:
            reg = registry()
            found = {}
            for name in ROW_TABLES:
                if name in metadata.tables:
                    cls = type(f"Farm_{name}", (FarmRow,), {"__module__": __name__})
                    reg.map_imperatively(cls, metadata.tables[name])
                    found[name] = cls
            _models[metadata] = found
        return found


def _insert_missing(table: Table, dialect: str) -> Insert:
    """An ``INSERT`` of a bare ``agents`` row (``a``, ``s``) that does nothing when the
    agent has a row (also one another transaction inserted meanwhile, where the
    database can tell: SQLite, PostgreSQL)."""
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        return insert(table).values(agent_id=bindparam("a"), simulation_id=bindparam("s")) \
            .on_conflict_do_nothing(index_elements=["agent_id"])
    a = bindparam("a", type_=table.c.agent_id.type)
    s = bindparam("s", type_=table.c.simulation_id.type)
    return table.insert().from_select(["agent_id", "simulation_id"], select(a, s).where(
        ~exists().where(table.c.agent_id == a)))


def same_database(a: Engine, b: Engine) -> bool:
    """Whether two engines reach one database: the same SQLite file (an in-memory one
    only through one engine), or the same host, port and database of one server kind."""
    if a is b:
        return True
    ua, ub = a.url, b.url
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        pa, pb = ua.database or ":memory:", ub.database or ":memory:"
        if ":memory:" in (pa, pb) or pa.startswith("file:") or pb.startswith("file:"):
            return pa == pb and ":memory:" not in pa
        return os.path.realpath(pa) == os.path.realpath(pb)
    same_port = ua.port is None or ub.port is None or ua.port == ub.port
    return (ua.host or "", ua.database) == (ub.host or "", ub.database) and same_port


class SessionWriter:
    """The rows of AgentFarm's tables other than ``agent_actions``, written in
    ``database._execute_in_transaction`` as AgentFarm's ``DataLogger`` writes them.

    Each write is one call of ``_execute_in_transaction``, so one transaction of the
    database: all or nothing. A database error it raises (``SQLAlchemyError``, after
    the database's own retries) is raised as ``BackendError``, from it."""

    def __init__(self, database: FarmDatabase, archive: Archive) -> None:
        if not callable(getattr(database, "_execute_in_transaction", None)):
            raise ConfigError("database= needs an _execute_in_transaction(func) method "
                              "(AgentFarm's SimulationDatabase has one)")
        engine = getattr(database, "engine", None)
        if isinstance(engine, Engine) and not same_database(engine, archive.engine):
            raise ConfigError(
                f"database= writes to {engine.url.render_as_string(hide_password=True)!r} "
                f"and the archive is {archive.location!r}: they must be one database (the "
                "agents rows of archived actions are read and written in the archive)")
        self.database = database
        self.archive = archive
        self.models = models(archive.tables)
        self._bare = _insert_missing(archive.tables.tables["agents"],
                                     archive.engine.dialect.name)

    def _run(self, work: Callable[[Session], None]) -> None:
        try:
            self.database._execute_in_transaction(work)
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc

    def _model(self, name: str) -> type[FarmRow]:
        try:
            return self.models[name]
        except KeyError:
            raise ConfigError(f"the archive's AgentFarm generation "
                              f"({self.archive.generation!r}) has no {name} table") from None

    def insert(self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *,
               bare: Mapping[Any, Any] | None = None) -> None:
        """The rows of ``batches`` (table name, rows) in one transaction, in order; a
        batch without rows is left out. ``simulation_steps`` rows are added as objects
        (``session.add``), the others bulk inserted. ``bare`` (agent id -> simulation):
        agents that get a bare ``agents`` row first where they have none."""
        tables = self.archive.tables.tables
        todo = [(self._model(name), tables[name], [farmrows.fit(tables[name], r)
                                                   for r in rows])
                for name, rows in batches if rows]
        parents = [{"a": a, "s": s} for a, s in sorted((bare or {}).items(),
                                                       key=lambda kv: str(kv[0]))]
        if not todo:
            return

        def work(session: Session) -> None:
            if parents:
                session.execute(self._bare, parents)
            for model, table, rows in todo:
                if table.name == "simulation_steps":
                    for row in rows:
                        session.add(model(**row))
                else:
                    session.bulk_insert_mappings(model, rows)

        self._run(work)

    def insert_agents(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``agents`` rows in one transaction, bulk inserted (also none, as AgentFarm
        calls it). A row the archive holds bare (an action of the agent came first, in
        the same simulation) is completed instead; an agent with another row fails on
        the primary key, as AgentFarm's insert does. Which rows are bare is read from
        the archive when the transaction runs (again on a retry of the database's)."""
        table = self.archive.tables.tables["agents"]
        model = self._model("agents")
        fitted = [farmrows.fit(table, r) for r in rows]

        def work(session: Session) -> None:
            bare = farmrows.bare_agents(self.archive,
                                        {r["agent_id"]: r["simulation_id"] for r in rows})
            session.bulk_insert_mappings(model, [
                r for r in fitted if r["agent_id"] not in bare])
            if bare:
                session.bulk_update_mappings(model, [
                    r for r in fitted if r["agent_id"] in bare])

        self._run(work)
