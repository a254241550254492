"""Alembic migrations of the SQL archive schema (agentmem.migrations.sql), on real SQLite
files and a real PostgreSQL (a schema of each test's own; see test_sql_archive)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from test_sql_archive import (  # noqa: F401 - db: the sqlite/postgresql fixture
    ActionModel,
    Db,
    _agentfarm_ddl,
    db,
    make_actions,
)

from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.errors import BackendError, ConfigError
from agentmem.migrations import sql as migrations
from agentmem.migrations.sql import VERSION_TABLE, Revision

FOUR = ("state_before_id", "state_after_id", "resources_before", "resources_after")
LOG = "agentmem_migration_log"
SIDE = "agentmem_action_extras"
SIM = "sim_farm01"
BASE_COLUMNS = ("action_id", "simulation_id", "step_number", "agent_id", "action_type",
                "action_target_id", "reward", "details")


def _farm(target: Db, generation: str = "new") -> Engine:
    """An AgentFarm database of ``generation`` with a few rows of its own (FKs on)."""
    engine = target.engine()
    with engine.begin() as conn:
        for stmt in _agentfarm_ddl(target.kind, generation):
            conn.execute(text(stmt))
        conn.execute(text(
            "INSERT INTO simulations (simulation_id, status, parameters, simulation_db_path) "
            f"VALUES ('{SIM}', 'running', '{{\"seed\": 1}}', 'farm.db')"))
        for agent in ("agent_f1", "agent_f2"):
            conn.execute(text(
                "INSERT INTO agents (agent_id, simulation_id, agent_type, birth_time) "
                f"VALUES ('{agent}', '{SIM}', 'SystemAgent', 0)"))
        for step in range(3):
            conn.execute(text(
                "INSERT INTO agent_actions (simulation_id, step_number, agent_id, "
                "action_type, action_target_id, reward, details) VALUES (:s, :n, 'agent_f1', "
                "'attack', 'agent_f2', 0.5, '{\"damage_dealt\": 2.0}')"), {"s": SIM, "n": step})
    return engine


def _actions(n: int, sim: str) -> list[Action]:
    """make_actions with rewards a float32 holds exactly: AgentFarm's PostgreSQL ``reward``
    is a REAL, which rounds the others (docs/archive.md)."""
    return [a.model_copy(update={"reward": None if a.reward is None else round(a.reward * 4) / 4})
            for a in make_actions(n, sim=sim)]


def _shape(engine: Engine, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every table's columns (name, type, nullability), indexes and foreign keys."""
    insp = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"],
                    tuple(f["referred_columns"])) for f in insp.get_foreign_keys(table)),
        )
        for table in insp.get_table_names() if table not in skip
    }


def _rows(engine: Engine, columns: tuple[str, ...] = BASE_COLUMNS) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            f"SELECT {', '.join(columns)} FROM agent_actions ORDER BY action_id"))]


def _fk_violations(target: Db, engine: Engine) -> list[Any]:
    if target.kind != "sqlite":
        return []  # PostgreSQL enforced them throughout
    with engine.connect() as conn:
        return list(conn.execute(text("PRAGMA foreign_key_check")))


def _columns(engine: Engine) -> dict[str, tuple[str, bool]]:
    return {c["name"]: (str(c["type"]), c["nullable"])
            for c in inspect(engine).get_columns("agent_actions")}


def test_upgrade_today_generation(db: Db) -> None:  # noqa: F811
    engine = _farm(db)
    before = _rows(engine)
    assert migrations.current(db.url) is None
    migrations.upgrade(db.url, "0001")
    assert migrations.current(db.url) == "0001"

    real = "FLOAT" if db.kind == "sqlite" else "DOUBLE PRECISION"
    columns = _columns(engine)
    assert {c: columns[c] for c in FOUR} == {
        "state_before_id": ("VARCHAR(128)", True), "state_after_id": ("VARCHAR(128)", True),
        "resources_before": (real, True), "resources_after": (real, True)}
    tables = set(inspect(engine).get_table_names())
    assert {SIDE, LOG, VERSION_TABLE} <= tables
    assert "alembic_version" not in tables
    assert _rows(engine) == before  # AgentFarm's rows, untouched
    assert _rows(engine, FOUR) == [(None,) * 4] * 3

    # the archive now keeps every field in agent_actions' own columns
    actions = _actions(120, "sim_after")
    with open_archive(db.url) as archive:
        assert set(FOUR) <= archive.action_columns
        assert archive.write(actions) == 120
        assert archive.read("sim_after") == actions
        assert [a.action_type for a in archive.read(SIM)] == ["attack"] * 3
    with engine.connect() as conn:
        assert conn.execute(text(
            f"SELECT count(*) FROM {SIDE} WHERE extra_fields IS NOT NULL")).scalar() == 0
        stored = conn.execute(text(
            "SELECT resources_before, state_before_id FROM agent_actions "
            "WHERE simulation_id = 'sim_after' ORDER BY action_id")).all()
    assert stored == [(a.resources_before, a.state_before_id) for a in actions]
    assert _fk_violations(db, engine) == []

    # revision 0002: back to AgentFarm's own columns, the values kept in extra_fields
    migrations.upgrade(db.url)
    assert migrations.current(db.url) == "0002"
    assert not set(FOUR) & set(_columns(engine))
    assert LOG not in inspect(engine).get_table_names() or _log_rows(engine) == [
        ("table", SIDE)]
    with open_archive(db.url) as archive:
        assert archive.read("sim_after") == actions
    assert _rows(engine)[:3] == before
    engine.dispose()


def _log_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text(f"SELECT kind, name FROM {LOG}")))


@pytest.mark.parametrize("generation", ["new", "old"])
def test_downgrade_restores_the_original(db: Db, generation: str) -> None:  # noqa: F811
    engine = _farm(db, generation)
    before_shape = _shape(engine)
    before_rows = _rows(engine)
    migrations.upgrade(db.url, "0001")
    added = {"new": set(FOUR), "old": {"module_type", "module_id"}}[generation]
    assert set(_columns(engine)) == {c for c, *_ in before_shape["agent_actions"][0]} | added
    if generation == "old":
        assert "idx_agent_actions_module_type" in {
            i["name"] for i in inspect(engine).get_indexes("agent_actions")}
    # a write through the archive, then back to AgentFarm's own schema
    written = [Action(agent_id="agent_f2", simulation_id=SIM, step_number=5,
                      action_type="gather", action_id="agent_f2-5-gather", reward=1.5,
                      module_type="dqn", details={"amount_gathered": 3})]
    with open_archive(db.url) as archive:
        assert archive.write(written) == 1
    migrations.downgrade(db.url, "base")
    assert migrations.current(db.url) is None

    # exactly what was there: AgentFarm's tables as they were, and Alembic's empty table
    assert _shape(engine, skip=(VERSION_TABLE,)) == before_shape
    assert _rows(engine)[:3] == before_rows
    assert _rows(engine)[3][1:] == (SIM, 5, "agent_f2", "gather", None, 1.5,
                                    '{"amount_gathered":3}')
    assert _fk_violations(db, engine) == []

    # AgentFarm goes on logging into it, with its foreign keys
    with Session(engine) as session:
        if generation == "new":
            session.add(ActionModel(simulation_id=SIM, step_number=9, agent_id="agent_f1",
                                    action_type="pass", module_type="dqn"))
            session.commit()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO agent_actions (simulation_id, step_number, agent_id, action_type) "
            f"VALUES ('{SIM}', 10, 'agent_f2', 'move')"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO agent_actions (simulation_id, step_number, agent_id, action_type) "
            f"VALUES ('{SIM}', 11, 'agent_nobody', 'move')"))
    assert [r[2] for r in _rows(engine)[4:]] == ([9, 10] if generation == "new" else [10])
    # and the way up again
    migrations.upgrade(db.url, "0001")
    assert migrations.current(db.url) == "0001"
    assert added <= set(_columns(engine))
    engine.dispose()


def test_upgrade_twice_is_harmless(db: Db) -> None:  # noqa: F811
    engine = _farm(db)
    migrations.upgrade(db.url, "0001")
    shape = _shape(engine)
    with engine.connect() as conn:
        log = sorted(conn.execute(text(f"SELECT kind, name FROM {LOG}")).all())
    assert log == sorted([("table", SIDE)] + [("column", c) for c in FOUR])
    migrations.upgrade(db.url, "0001")
    assert _shape(engine) == shape
    assert migrations.current(db.url) == "0001"
    with engine.connect() as conn:
        assert sorted(conn.execute(text(f"SELECT kind, name FROM {LOG}")).all()) == log
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [
            ("0001",)]
    engine.dispose()


@pytest.mark.parametrize("how", ["upgrade", "stamp"])
def test_an_archive_made_by_open_archive_is_left_as_it_is(db: Db, how: str) -> None:  # noqa: F811
    actions = make_actions(60)
    with open_archive(db.url) as archive:
        archive.write(actions)
    engine = db.engine()
    shape, rows = _shape(engine), _rows(engine, BASE_COLUMNS)
    getattr(migrations, how)(db.url)
    assert migrations.current(db.url) == "0002"
    assert _shape(engine, skip=(VERSION_TABLE,)) == shape  # not even the log table
    assert _rows(engine, BASE_COLUMNS) == rows
    # downgrading removes only what revision 0001 added: here nothing
    migrations.downgrade(db.url, "base")
    assert migrations.current(db.url) is None
    assert _shape(engine, skip=(VERSION_TABLE,)) == shape
    with open_archive(db.url) as archive:
        assert archive.read("sim_3f9a2c1d") == actions
    engine.dispose()


def test_side_table_values_move_into_the_columns_and_back(db: Db) -> None:  # noqa: F811
    """An AgentFarm database used as an archive before the upgrade: the four fields sat
    in extra_fields; upgrade moves them into the new columns, downgrade moves them back."""
    engine = _farm(db)
    actions = _actions(80, "sim_before")
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 80

    def extras() -> list[Any]:
        with engine.connect() as conn:
            return [None if t is None else json.loads(t) for (t,) in conn.execute(text(
                f"SELECT extra_fields FROM {SIDE} ORDER BY row_id"))]

    kept = extras()
    assert any(k and "resources_before" in k for k in kept)
    migrations.upgrade(db.url, "0001")
    assert LOG in inspect(engine).get_table_names()
    with engine.connect() as conn:
        moved = conn.execute(text(
            f"SELECT {', '.join(FOUR)} FROM agent_actions WHERE simulation_id = 'sim_before' "
            "ORDER BY action_id")).all()
        assert conn.execute(text(f"SELECT kind FROM {LOG}")).scalars().all() == ["column"] * 4
    assert [tuple(r) for r in moved] == [
        (a.state_before_id, a.state_after_id, a.resources_before, a.resources_after)
        for a in actions]
    assert [k for k in extras() if k is not None] == []  # nothing else was kept there
    with open_archive(db.url) as archive:
        assert archive.read("sim_before") == actions

    migrations.downgrade(db.url, "base")
    assert not set(FOUR) & set(_columns(engine))
    assert SIDE in inspect(engine).get_table_names()  # it was there before: it stays
    assert extras() == kept
    with open_archive(db.url) as archive:
        assert archive.read("sim_before") == actions
    engine.dispose()


def test_an_empty_database_gets_the_whole_mirror(db: Db) -> None:  # noqa: F811
    migrations.upgrade(db.url)
    engine = db.engine()
    assert {"simulations", "agents", "agent_actions", SIDE, LOG} <= set(
        inspect(engine).get_table_names())
    actions = make_actions(30)
    with open_archive(db.url) as archive:
        archive.write(actions)
        assert archive.read("sim_3f9a2c1d") == actions
    migrations.downgrade(db.url, "base")
    assert set(inspect(engine).get_table_names()) == {VERSION_TABLE}
    engine.dispose()


def test_a_foreign_agent_actions_table_is_refused(db: Db) -> None:  # noqa: F811
    engine = db.engine()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE agent_actions (id INTEGER PRIMARY KEY, what TEXT)"))
    with pytest.raises(BackendError, match="lacks"):
        migrations.upgrade(db.url)
    assert set(inspect(engine).get_table_names()) == {"agent_actions"}  # rolled back
    engine.dispose()


def test_history_heads_and_errors(tmp_path: Path) -> None:
    assert migrations.history() == [
        Revision(revision="0001", down_revision=None,
                 description="AgentFarm's database up to agentmem's mirror schema.",
                 is_head=False),
        Revision(revision="0002", down_revision="0001",
                 description="Back to AgentFarm's own ``agent_actions``: the columns "
                             "revision 0001 added go.", is_head=True)]
    assert migrations.heads() == ["0002"]
    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigError, match="no SQLite database"):
        migrations.current(missing)
    with pytest.raises(ConfigError, match="no SQLite database"):
        migrations.downgrade(missing, "base")
    assert not missing.exists()
    with pytest.raises(ConfigError, match="not a database URL"):
        migrations.upgrade("nodriver://:::")
    with pytest.raises(ConfigError, match="cannot use"):
        migrations.upgrade("nodriver://host/db")
    path = tmp_path / "farm.db"
    migrations.upgrade(path)
    with pytest.raises(ConfigError, match="9999"):
        migrations.upgrade(path, "9999")
    assert migrations.current(str(path)) == "0002"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_offline_sql(tmp_path: Path, kind: str) -> None:
    target = (tmp_path / "farm.db" if kind == "sqlite"
              else "postgresql+psycopg://user@db.invalid/agentfarm")
    up = migrations.upgrade(target, sql=True)
    assert up is not None
    real = "FLOAT" if kind == "sqlite" else "DOUBLE PRECISION"
    for line in ("ALTER TABLE agent_actions ADD COLUMN state_before_id VARCHAR(128)",
                 f"ALTER TABLE agent_actions ADD COLUMN resources_after {real}",
                 f"CREATE TABLE {SIDE}", f"CREATE TABLE {VERSION_TABLE}",
                 f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')"):
        assert line in up
    down = migrations.downgrade(target, "base", sql=True)
    assert down is not None
    assert f"DROP TABLE {SIDE}" in down
    if kind == "sqlite":
        assert "_alembic_tmp_agent_actions" in down  # batch mode copies the table
    else:
        assert "ALTER TABLE agent_actions DROP COLUMN resources_before" in down
    assert not (tmp_path / "farm.db").exists()  # nothing was run
