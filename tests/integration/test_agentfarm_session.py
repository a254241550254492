"""The AgentFarm drop-in with ``database=``: rows written in the database's transactions.

AgentFarm's ``DataLogger`` writes through ``SimulationDatabase._execute_in_transaction``;
AgentFarm cannot be installed here, so ``FarmDb`` below is a small real database object
of that shape: its own SQLAlchemy engine on the archive's database (a SQLite file with
foreign keys on, as AgentFarm sets them, or a PostgreSQL schema of the test's own), a
real ``Session`` per call, committed, rolled back on an error and, like AgentFarm's
``execute_with_retry``, run again up to three times. The rows are compared with
``ReferenceLogger`` (AgentFarm's logger per the reference, in test_agentfarm_dropin.py)
and with the drop-in without ``database=``. Real Redis/Valkey servers throughout.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from test_agentfarm_dropin import (
    AGENTS,
    SIM,
    ReferenceLogger,
    drive,
    simulation_calls,
    table_rows,
)
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

from agentmem.backends.sql import open_archive
from agentmem.errors import AgentMemError, BackendError, ConfigError
from agentmem.integrations.agentfarm import AgentFarmLogger
from agentmem.integrations.farmsession import FarmRow, models

ROW_TABLES = ("agents", "agent_states", "resource_states", "simulation_steps",
              "health_incidents")
"""The tables ``database=`` writes (current generation)."""


class FarmDb:
    """AgentFarm's ``SimulationDatabase`` transaction protocol on a real SQLite file."""

    def __init__(self, engine: Engine, *, retries: int = 3) -> None:
        self.engine = engine
        self.retries = retries
        self.Session = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.calls = 0  # _execute_in_transaction
        self.runs = 0  # func(session), retries included
        self.commits = 0  # a session event: AgentFarm's session machinery applies
        self.inserted: Counter[str] = Counter()  # INSERT statements per table, this engine
        self.fail_commits = 0  # the next commits that fail (a lost connection)

        @event.listens_for(self.Session, "before_commit")
        def _count(session: Session) -> None:
            self.commits += 1
            if self.fail_commits:
                self.fail_commits -= 1
                raise OperationalError("COMMIT", {}, Exception("disk I/O error (test)"))

        watch(self.engine, self.inserted)

    def _execute_in_transaction(self, func: Callable[[Session], Any]) -> Any:
        self.calls += 1
        for attempt in range(1, self.retries + 1):
            session = self.Session()
            try:
                session.autoflush = False
                self.runs += 1
                result = func(session)
                session.commit()
                return result
            except SQLAlchemyError:
                session.rollback()
                if attempt == self.retries:
                    raise
            finally:
                session.close()
        raise AssertionError("not reached")


def sqlite_engine(path: Path) -> Engine:
    """AgentFarm's settings of its SQLite file: foreign keys on, a busy timeout."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA busy_timeout=5000")

    return engine


def rows(archive: Any, table: str) -> list[dict[str, Any]]:
    """A table's rows ordered by its primary key."""
    t = archive.tables.tables[table]
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(t).order_by(*t.primary_key.columns))]


def agent_ids(archive: Any, table: str) -> list[str]:
    return sorted(r["agent_id"] for r in rows(archive, table))


def watch(engine: Any, counter: Counter[str]) -> None:
    """Count the INSERT statements an engine runs, per table."""
    @event.listens_for(engine, "before_cursor_execute")
    def _insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = re.match(r'\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+"?(\w+)', statement, re.I)
        if found:
            counter[found.group(1)] += 1


@pytest.fixture
def farm(db: Db) -> Iterator[tuple[Any, FarmDb, Counter[str]]]:  # noqa: F811
    """An archive (SQLite, PostgreSQL), AgentFarm's database object on the same
    database, and the archive engine's INSERTs per table."""
    with open_archive(db.url) as archive:
        farm_db = FarmDb(sqlite_engine(Path(db.url)) if db.kind == "sqlite" else db.engine())
        archived: Counter[str] = Counter()
        watch(archive.engine, archived)
        yield archive, farm_db, archived
        farm_db.engine.dispose()


def test_the_models_are_the_archives_tables_mapped_once(farm):
    archive, _, _ = farm
    found = models(archive.tables)
    assert found is models(archive.tables)  # made once per schema
    for name in ROW_TABLES:
        cls = found[name]
        assert issubclass(cls, FarmRow)
        assert inspect(cls).local_table is archive.tables.tables[name]
        assert not cls.__module__.startswith("farm")
    assert "learning_experiences" not in found  # the original generation's table


@pytest.mark.parametrize("mode", ["buffered", "buffered+thread", "redis", "background"])
def test_every_table_holds_agentfarms_rows_written_in_its_transactions(mem, tmp_path, mode):
    archive = open_archive(tmp_path / "agentmem.db")
    fdb = FarmDb(sqlite_engine(tmp_path / "agentmem.db"))
    archived: Counter[str] = Counter()
    watch(archive.engine, archived)
    calls = simulation_calls()
    reference = ReferenceLogger(tmp_path / "agentfarm.db", SIM, buffer_size=100)
    drive(reference, calls)
    reference.engine.dispose()
    options: dict[str, Any] = {
        "background": {"background": True},
        "buffered+thread": {"archive_thread": True},
    }.get(mode, {"durability": mode})
    with AgentFarmLogger(mem, archive, SIM, buffer_size=100, database=fdb, **options) as lg:
        assert lg.database is fdb
        drive(lg, calls)
        assert not lg.needs_flush

    for table in (*ROW_TABLES, "agent_actions", "simulations"):
        want = table_rows(tmp_path / "agentfarm.db", table)
        got = table_rows(tmp_path / "agentmem.db", table)
        if table == "simulations":
            for r in (*want, *got):
                r.pop("simulation_db_path")
        assert len(got) == len(want) > 0, table
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"{table} row {n}"
    # every row of those tables came through the database's transactions, none through
    # the archive's engine, which wrote the actions (and the simulations row)
    steps = len({c["step_number"] for c in calls}) - 1
    assert fdb.calls == fdb.runs == fdb.commits >= 1 + steps  # agents, then one per step
    assert set(fdb.inserted) == set(ROW_TABLES)
    assert fdb.inserted["simulation_steps"] == steps
    assert not set(archived) & set(ROW_TABLES), archived
    assert archived["agent_actions"] > 0
    archive.close()
    fdb.engine.dispose()


def test_the_original_generation_as_without_database(mem, r, tmp_path):
    """The original generation's tables (learning_experiences, reproduction_events, its
    agent_states ids) hold in database mode what the drop-in writes without it."""
    def run(lg: AgentFarmLogger) -> None:
        lg.log_agent(AGENTS[0], 0, "X", (0.0, 1.0), 1.0, 2.0, starvation_threshold=50)
        lg.log_agents_batch([{"agent_id": AGENTS[1], "birth_time": 1, "agent_type": "Y",
                              "position": (2, 3), "initial_resources": 1,
                              "starting_health": 1, "action_weights": {"a": 1}}])
        lg.log_agent_action(3, AGENTS[0], "move", resources_before=5.0)
        lg.log_learning_experience(3, AGENTS[0], "dqn", 7, 2, "move", 0.5)
        lg.log_learning_experience(3, "learner", "dqn", 8, 1, "eat", 0.25)  # unknown agent
        lg.log_reproduction_event(3, AGENTS[0], "child", True, 10.0, 5.0, 5.0, None, 0, 1,
                                  (1.0, 2.0))
        lg.log_health_incident(3, AGENTS[1], 2.0, 1.0, "attack", {"by": AGENTS[0]})
        lg.log_step(3, [(AGENTS[0], 1.0, 2.0, 5.0, 90.0, 100.0, 0, 1, 1.5, 3),
                        ("stranger", 1.0, 2.0, 5.0, 90.0, 100.0, 0, 0, 0.5, 3)],
                    [("r1", 2.0, 1.0, 1.0)], {"total_agents": 2})
        lg.log_resource("r2", 4.0, (5.0, 6.0))

    with open_archive(tmp_path / "plain.db", generation="original") as archive, \
            AgentFarmLogger(mem, archive, SIM) as lg:
        run(lg)
    r.flushdb()
    with open_archive(tmp_path / "session.db", generation="original") as archive:
        fdb = FarmDb(sqlite_engine(tmp_path / "session.db"))
        with AgentFarmLogger(mem, archive, SIM, database=fdb) as lg:
            run(lg)
        fdb.engine.dispose()
    tables = ("agents", "agent_states", "resource_states", "simulation_steps",
              "health_incidents", "learning_experiences", "reproduction_events",
              "agent_actions")
    for table in tables:
        got, want = (table_rows(tmp_path / name, table) for name in ("session.db", "plain.db"))
        for row in (*got, *want):
            row.pop("timestamp", None)  # the original generation's wall-clock stamps
        assert got == want, table
    assert {"learning_experiences", "reproduction_events"} <= set(fdb.inserted)


def test_a_failed_transaction_writes_nothing_and_raises_a_backend_error(mem, farm):
    """A duplicate key fails the whole transaction, after the database's own retries:
    nothing of it is written, and the error is a BackendError from the database's."""
    archive, fdb, _ = farm
    with AgentFarmLogger(mem, archive, SIM, database=fdb) as lg:
        lg.log_agent("a1", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
        runs = fdb.runs
        with pytest.raises(AgentMemError) as caught:
            lg.log_agents_batch([
                {"agent_id": "a2", "birth_time": 0, "agent_type": "X", "position": (0, 0),
                 "initial_resources": 1, "starting_health": 1},
                {"agent_id": "a1", "birth_time": 0, "agent_type": "X", "position": (0, 0),
                 "initial_resources": 1, "starting_health": 1}])  # logged already
        assert isinstance(caught.value, BackendError)
        assert isinstance(caught.value.__cause__, IntegrityError)
        assert fdb.runs - runs == 3  # AgentFarm's retries ran, then it raised
        assert agent_ids(archive, "agents") == ["a1"]

        # a step whose simulation_steps row exists: its states, resources and the bare
        # agents row of its unknown agent are not written either
        lg.log_step(1, [("a1", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 1)], [],
                    {"total_agents": 1})
        with pytest.raises(BackendError):
            lg.log_step(1, [("ghost", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 1)],
                        [("r1", 1.0, 0.0, 0.0)], {"total_agents": 2})
        assert agent_ids(archive, "agents") == ["a1"]
        assert agent_ids(archive, "agent_states") == ["a1"]
        assert rows(archive, "resource_states") == []
        assert [r["total_agents"] for r in rows(archive, "simulation_steps")] == [1]
        # the logger goes on
        lg.log_step(2, [("ghost", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 2)], [],
                    {"total_agents": 2})
    assert agent_ids(archive, "agents") == ["a1", "ghost"]


def test_the_databases_retry_runs_the_work_again(mem, farm):
    """A commit that fails once (the database's retry runs the work in a new session):
    every row once, and a bare agents row an action brought is completed on the retry."""
    archive, fdb, _ = farm
    with AgentFarmLogger(mem, archive, SIM, database=fdb) as lg:
        lg.log_agent_action(0, "a1", "move")
        lg.flush_action_buffer()  # a bare agents row for a1
        fdb.fail_commits = 1
        lg.log_agent("a1", 0, "SystemAgent", (1.0, 2.0), 3.0, 4.0)
        fdb.fail_commits = 1
        lg.log_step(0, [("a1", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 0)],
                    [("r1", 1.0, 0.0, 0.0)], {"total_agents": 1})
        assert fdb.runs == fdb.calls + 2
    [agent] = rows(archive, "agents")
    assert (agent["agent_type"], agent["starting_health"]) == ("SystemAgent", 4.0)
    assert len(rows(archive, "agent_states")) == len(rows(archive, "resource_states")) \
        == len(rows(archive, "simulation_steps")) == 1


def test_an_empty_batch_is_one_transaction_and_writes_nothing(mem, farm):
    """AgentFarm calls bulk_insert_mappings with an empty list in its transaction."""
    archive, fdb, _ = farm
    with AgentFarmLogger(mem, archive, SIM, database=fdb) as lg:
        lg.log_agents_batch([])
        assert fdb.calls == 1
        assert rows(archive, "agents") == []
        lg.flush_all_buffers()  # nothing buffered: no transaction
        assert fdb.calls == 1


@pytest.mark.parametrize("with_database", [False, True])
def test_agent_states_of_an_agent_without_an_agents_row(mem, farm, with_database):
    """The agent gets a bare agents row in the step's transaction (it raised FOREIGN KEY
    constraint failed, as AgentFarm's log_step does on its SimulationDatabase, which turns
    foreign keys on), which a later log_agent completes; an agent known by its pending
    actions gets its row with them."""
    archive, fdb, _ = farm
    options: dict[str, Any] = {"database": fdb} if with_database else {}
    with AgentFarmLogger(mem, archive, SIM, **options) as lg:
        lg.log_agent_action(0, "acting", "move")  # buffered: archived before the step
        lg.log_step(0, [("ghost", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 0),
                        ("acting", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 0)], [],
                    {"total_agents": 2})
        assert not lg._action_buffer
        lg.log_agent("ghost", 0, "SystemAgent", (1.0, 2.0), 3.0, 4.0)
    agents = {r["agent_id"]: r["agent_type"] for r in rows(archive, "agents")}
    assert agents == {"acting": None, "ghost": "SystemAgent"}
    assert agent_ids(archive, "agent_states") == ["acting", "ghost"]
    assert archive.count(SIM) == 1
    assert (fdb.calls > 0) == with_database


def test_database_needs_agentfarms_transaction_method_and_close_still_ends(mem, farm):
    archive, fdb, _ = farm
    with pytest.raises(ConfigError, match="_execute_in_transaction"):
        AgentFarmLogger(mem, archive, SIM, database=object())  # type: ignore[arg-type]
    lg = AgentFarmLogger(mem, archive, SIM, database=fdb)
    lg.log_health_incident(0, "a1", 2.0, 1.0, "x")
    lg.close()  # the incident is written through the database
    calls = fdb.calls
    assert calls == 1
    for call in (lambda: lg.log_step(1, [], [], {}), lambda: lg.log_resource("r", 1.0, (0, 0)),
                 lambda: lg.log_agent("a2", 0, "X", (0, 0), 1, 1),
                 lambda: lg.log_health_incident(1, "a1", 2.0, 1.0, "x")):
        with pytest.raises(ConfigError, match="closed"):
            call()
    assert fdb.calls == calls
    assert agent_ids(archive, "health_incidents") == ["a1"]


@pytest.mark.parametrize("with_database", [False, True])
def test_int_and_text_ids_of_one_unknown_agent_are_one_bare_row(mem, farm, with_database):
    """Health incidents and step states of agents never logged, named by ``7``, ``"7"``
    and an int: one bare row each (the lookup compares text with text: PostgreSQL refused
    an integer against the text column, and ``7``/``"7"`` were inserted twice)."""
    archive, fdb, _ = farm
    options: dict[str, Any] = {"database": fdb} if with_database else {}
    with AgentFarmLogger(mem, archive, SIM, **options) as lg:
        lg.log_health_incident(0, 7, 2.0, 1.0, "x")  # type: ignore[arg-type]
        lg.log_health_incident(0, "7", 2.0, 1.0, "y")
        lg.flush_health_buffer()
        lg.log_step(0, [(11, 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, 0)], [],
                    {"total_agents": 1})
    assert sorted(r["agent_id"] for r in rows(archive, "agents")) == ["11", "7"]
    assert agent_ids(archive, "health_incidents") == ["7", "7"]
    assert agent_ids(archive, "agent_states") == ["11"]


def test_database_on_another_database_than_the_archive_is_refused(mem, farm, tmp_path):
    archive, _, _ = farm
    other = FarmDb(sqlite_engine(tmp_path / "other.db"))
    with pytest.raises(ConfigError, match="must be one database"):
        AgentFarmLogger(mem, archive, SIM, database=other)
    other.engine.dispose()
