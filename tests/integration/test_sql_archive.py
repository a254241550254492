"""The SQL archive (agentmem.backends.sql) on real SQLite files and a real PostgreSQL.

PostgreSQL: ``AGENTMEM_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a schema of
its own, created and dropped by the fixture. The PostgreSQL cases are skipped, with
the reason, when that server cannot be reached.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, relationship

from agentmem import Action
from agentmem.backends import sql
from agentmem.backends.sql import DETAILS_MAX_LENGTH, open_archive
from agentmem.errors import BackendError

PG_ENV = "AGENTMEM_TEST_PG_URL"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_pg_state: dict[str, str | None] = {}


def _pg_base() -> tuple[str | None, str]:
    """The PostgreSQL URL to test against, or None and why not."""
    if "url" not in _pg_state:
        url = os.environ.get(PG_ENV) or PG_DEFAULT
        try:
            engine = create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["url"], _pg_state["why"] = url, ""
        except Exception as exc:  # any failure to connect means: skip
            _pg_state["url"] = None
            _pg_state["why"] = f"PostgreSQL at {make_url(url).render_as_string()} " \
                f"unreachable ({type(exc).__name__}); set {PG_ENV}"
    return _pg_state["url"], _pg_state["why"] or ""


@dataclass
class Db:
    kind: str
    url: str  # what open_archive takes (a path for SQLite)

    def engine(self) -> Engine:
        """A plain engine of the test's own (AgentFarm's settings: FKs on for SQLite)."""
        if self.kind == "sqlite":
            engine = create_engine(f"sqlite:///{self.url}")

            @event.listens_for(engine, "connect")
            def _fk(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA foreign_keys=ON")

            return engine
        return create_engine(self.url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from db_of(request.param, tmp_path)


def db_of(kind: str, tmp_path: Path) -> Iterator[Db]:
    """A fresh archive location of ``kind``: a SQLite file, or a PostgreSQL schema of the
    test's own (dropped afterwards; the test is skipped without a server)."""
    if kind == "sqlite":
        yield Db("sqlite", str(tmp_path / "archive.db"))
        return
    base, why = _pg_base()
    if base is None:
        pytest.skip(why)
    schema = f"agentmem_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield Db("postgresql", url.render_as_string(hide_password=False))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_actions(n: int, *, sim: str = "sim_3f9a2c1d", seed: int = 7) -> list[Action]:
    rng = random.Random(seed)
    agents = [f"agent_{i:04x}{seed}" for i in range(10)]
    kinds = ["move", "gather", "attack", "share", "defend", "action_12"]
    out = []
    for i in range(n):
        agent = agents[i % len(agents)]
        kind = kinds[i % len(kinds)]
        step = i // len(agents)
        details: Any = None
        if i % 5 != 0:
            details = {"old_position": (rng.random(), 2.0), "distance": rng.random(),
                       "note": "é" * (i % 7), "n": i}
        out.append(Action(
            agent_id=agent, simulation_id=sim, step_number=step, action_type=kind,
            action_id=f"{agent}-{step}-{kind}" + (".1" if i % 11 == 0 else ""),
            action_target_id=agents[(i + 1) % len(agents)] if i % 3 == 0 else None,
            state_before_id=f"{agent}-{step}" if i % 4 == 0 else None,
            state_after_id=f"{agent}-{step + 1}" if i % 4 == 0 else None,
            resources_before=rng.uniform(0, 100) if i % 2 else None,
            resources_after=rng.uniform(0, 100) if i % 2 else None,
            reward=rng.uniform(-5, 5) if i % 6 else None,
            details=details,
            position=(rng.uniform(-50, 50), rng.uniform(-50, 50)) if i % 2 == 0 else None,
            embedding=np.array([rng.random() for _ in range(8)], dtype=np.float32)
            if i % 3 == 1 else None,
            module_type="dqn" if i % 9 == 0 else None,
            module_id=f"mod_{i}" if i % 9 == 0 else None,
            stored_at=1_700_000_000 + i if i % 2 else None,
        ))
    return out


# -- round trip, idempotence, parents --------------------------------------------------


def test_write_read_1000(db: Db) -> None:
    actions = make_actions(1000)
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 1000
        back = archive.read("sim_3f9a2c1d")
    assert len(back) == 1000
    assert back == actions
    assert back[1].embedding is not None
    assert back[1].embedding.dtype == np.float32


def test_rewrite_is_idempotent(db: Db) -> None:
    actions = make_actions(300)
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 300
        assert archive.write(actions) == 0
        assert archive.write(actions[:50] + actions[:50]) == 0
        more = make_actions(20, sim="sim_other", seed=8)
        assert archive.write(actions[100:200] + more + more) == 20
        assert archive.count() == 320
        assert archive.read("sim_3f9a2c1d") == actions
    # reopening the same archive changes nothing either
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 0
        assert archive.count("sim_3f9a2c1d") == 300


def test_actions_without_id_get_the_redis_id_rule(db: Db) -> None:
    a = Action(agent_id="agent_a", simulation_id="sim_x", step_number=3, action_type="move")
    with open_archive(db.url) as archive:
        assert archive.write([a, a]) == 2
        assert archive.write([a]) == 1  # an id-less action is a new action, like Redis add
        ids = [x.action_id for x in archive.read("sim_x")]
    assert ids == ["agent_a-3-move", "agent_a-3-move.1", "agent_a-3-move.2"]


def test_parent_rows_first_with_foreign_keys_on(db: Db) -> None:
    actions = make_actions(40)
    with open_archive(db.url) as archive:
        if db.kind == "sqlite":
            with archive.engine.connect() as conn:
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert archive.write(actions) == 40
        location = archive.location
    engine = db.engine()
    with engine.connect() as conn:
        sims = conn.execute(text(
            "SELECT simulation_id, parameters, simulation_db_path, status FROM simulations"
        )).all()
        assert len(sims) == 1
        sim_id, params, path, status = sims[0]
        assert sim_id == "sim_3f9a2c1d"
        assert (json.loads(params) if isinstance(params, str) else params) == {}
        assert path == location
        assert status == "pending"
        if db.kind == "sqlite":
            assert path == str(Path(db.url).resolve())
        agents = conn.execute(text("SELECT agent_id, simulation_id FROM agents")).all()
        assert {a for a, _ in agents} == {x.agent_id for x in actions}
        assert {s for _, s in agents} == {"sim_3f9a2c1d"}
    # the foreign keys are really enforced: an action of an unknown agent is refused
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO agent_actions (simulation_id, step_number, agent_id, action_type) "
            "VALUES ('sim_3f9a2c1d', 1, 'agent_nobody', 'move')"))
    engine.dispose()


def test_default_archive_is_agentmem_db_in_cwd(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_archive() as archive:
        archive.write(make_actions(5))
    assert (tmp_path / "agentmem.db").exists()


# -- the write path: id lookups, row ids, the parent cache --------------------------------


def _by_id(actions: list[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: (a.agent_id, a.action_id or ""))


def test_rewrite_of_a_mix_looks_up_every_id(db: Db) -> None:
    actions = make_actions(1000)
    old = actions[::3] + actions[1::3]  # 667 of them, archived first
    with open_archive(db.url) as archive:
        assert archive.write(old) == 667
        assert archive.existing_ids(actions) == {
            (a.simulation_id, a.agent_id, str(a.action_id)) for a in old}
        assert archive.write(list(reversed(actions))) == 333
        assert archive.write(actions) == 0
        assert archive.count() == 1000
        assert _by_id(archive.read("sim_3f9a2c1d")) == _by_id(actions)


def test_two_archives_on_one_database_interleave(db: Db) -> None:
    a1, a2 = make_actions(300), make_actions(300, sim="sim_two", seed=8)
    with open_archive(db.url) as one, open_archive(db.url) as two:
        for start in range(0, 300, 100):
            assert one.write(a1[start:start + 100]) == 100
            assert two.write(a2[start:start + 100]) == 100
        assert one.read("sim_3f9a2c1d") == a1
        assert two.read("sim_two") == a2


def _trigger_ddl(kind: str) -> tuple[list[str], str]:
    """A trigger refusing every side-table row (the write fails after its parents), and
    the statement dropping it."""
    if kind == "sqlite":
        return (["CREATE TRIGGER refuse BEFORE INSERT ON agentmem_action_extras "
                 "BEGIN SELECT RAISE(ABORT, 'refused'); END"], "DROP TRIGGER refuse")
    return ([
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; "
        "END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON agentmem_action_extras "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    ], "DROP TRIGGER refuse ON agentmem_action_extras")


def test_a_rolled_back_write_leaves_no_parent_in_the_cache(db: Db) -> None:
    first, second = make_actions(20), make_actions(20, sim="sim_later", seed=8)
    with open_archive(db.url) as archive:
        assert archive.write(first) == 20
        engine = db.engine()
        create, drop = _trigger_ddl(db.kind)
        with engine.begin() as conn:
            for stmt in create:
                conn.execute(text(stmt))
        with pytest.raises(BackendError, match="refused"):
            archive.write(second)
        with engine.connect() as conn:  # the parents went with the transaction ...
            assert conn.execute(text(
                "SELECT count(*) FROM simulations WHERE simulation_id = 'sim_later'")).scalar() == 0
            assert conn.execute(text(
                "SELECT count(*) FROM agents WHERE simulation_id = 'sim_later'")).scalar() == 0
        # ... and the cache claims none of them
        assert "sim_later" not in archive._known_sims
        assert not {a.agent_id for a in second} & archive._known_agents
        assert "sim_3f9a2c1d" in archive._known_sims  # what was committed stays known
        with engine.begin() as conn:
            conn.execute(text(drop))
        engine.dispose()
        assert archive.write(second) == 20
        assert archive.read("sim_later") == second
        assert "sim_later" in archive._known_sims


def test_parents_deleted_behind_the_cache_are_written_again(db: Db) -> None:
    actions = make_actions(30)
    with open_archive(db.url) as archive:
        assert archive.write(actions[:10]) == 10
        engine = db.engine()
        with engine.begin() as conn:  # someone empties the archive, parents included
            for table in ("agentmem_action_extras", "agent_actions", "agents", "simulations"):
                conn.execute(text(f"DELETE FROM {table}"))
        engine.dispose()
        assert archive.write(actions) == 30
        assert archive.read("sim_3f9a2c1d") == actions
        assert archive.write(actions) == 0


def test_a_writer_that_loses_a_race_looks_again(db: Db,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers inserting one id at the same moment: the one that loses the race
    (its lookup missed the other's rows) runs its transaction again, finds them
    archived, and inserts only what is new; nothing fails, nothing is doubled."""
    actions = make_actions(20)
    with open_archive(db.url) as archive:
        assert archive.write(actions[:10]) == 10
        real = sql.existing_ids
        calls = []

        def blind_once(conn, batch):  # the other writer's rows are not visible yet
            calls.append(len(batch))
            return set() if len(calls) == 1 else real(conn, batch)

        monkeypatch.setattr(sql, "existing_ids", blind_once)
        assert archive.write(actions[5:]) == 10
        assert len(calls) == 2  # the first transaction lost the race and was run again
        monkeypatch.undo()
        assert archive.count() == 20
        assert archive.write(actions) == 0


def test_row_ids_when_sqlite_would_not_number_rows_in_sequence(tmp_path: Path) -> None:
    """Rows go in under ids SQLite chose, whatever the table: after a row at the largest
    id (SQLite then picks free ids at random), with triggers, with AUTOINCREMENT."""
    actions = make_actions(60)
    cases = {
        "top": ["INSERT INTO agent_actions (action_id, simulation_id, step_number, agent_id, "
                "action_type) VALUES (9223372036854775807, 'sim_farm', 0, 'agent_f', 'move')"],
        "trigger": ["CREATE TABLE seen (n INTEGER)",
                    "CREATE TRIGGER count_rows AFTER INSERT ON agent_actions "
                    "BEGIN INSERT INTO seen VALUES (new.action_id); END"],
    }
    for name, ddl in cases.items():
        path = tmp_path / f"{name}.db"
        with open_archive(path) as archive:
            with archive.engine.begin() as conn:
                conn.execute(text("INSERT INTO simulations (simulation_id, parameters, "
                                  "simulation_db_path) VALUES ('sim_farm', '{}', 'p')"))
                conn.execute(text("INSERT INTO agents (agent_id) VALUES ('agent_f')"))
                for stmt in ddl:
                    conn.execute(text(stmt))
            assert archive.write(actions[:1]) == 1
            assert archive.write(actions) == 59
            assert _by_id(archive.read("sim_3f9a2c1d")) == _by_id(actions)
            if name == "trigger":
                with archive.engine.connect() as conn:
                    assert conn.execute(text("SELECT count(*) FROM seen")).scalar() == 60
    # AUTOINCREMENT: ids never reused, even after the last rows were deleted
    path = tmp_path / "autoincrement.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for stmt in _agentfarm_ddl("sqlite", "new"):
            conn.execute(text(stmt.replace("action_id INTEGER NOT NULL",
                                           "action_id INTEGER PRIMARY KEY AUTOINCREMENT")
                              .replace("PRIMARY KEY (action_id),", "")))
    engine.dispose()
    with open_archive(path) as archive:
        assert archive.write(actions[:30]) == 30
        with archive.engine.begin() as conn:
            conn.execute(text("DELETE FROM agentmem_action_extras WHERE row_id > 20"))
            conn.execute(text("DELETE FROM agent_actions WHERE action_id > 20"))
        assert archive.write(actions) == 40
        rows = archive.read_rows("sim_3f9a2c1d")
    assert [r for r, _ in rows] == [*range(1, 21), *range(31, 71)]
    assert [a for _, a in rows] == actions  # the missing ones again, in input order


# -- the details rule -------------------------------------------------------------------


def _stored_details(db: Db) -> list[tuple[str | None, str | None]]:
    engine = db.engine()
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT a.details, x.details_full FROM agent_actions a "
            "JOIN agentmem_action_extras x ON x.row_id = a.action_id ORDER BY a.action_id"
        )).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_details_rule(db: Db) -> None:
    long = {"text": "x" * 1990}                     # 2,001 characters of JSON
    exact = {"t": "é" * (DETAILS_MAX_LENGTH - 8)}   # exactly 1,024 characters, more bytes
    over = {"t": "🙂" * (DETAILS_MAX_LENGTH - 7)}   # 1,025 characters
    assert len(json.dumps(exact, ensure_ascii=False, separators=(",", ":"))) == 1024
    actions = [
        Action(agent_id="agent_1", simulation_id="sim_d", step_number=s, action_type="move",
               action_id=f"agent_1-{s}-move", details=d)
        for s, d in enumerate([long, exact, over, {"a": 1}, None])
    ]
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 5
        assert archive.read("sim_d") == actions
    stored = _stored_details(db)
    marker = '{{"agentmem_details":"agentmem_action_extras.details_full","length":{}}}'
    # identical values on every engine: the rule depends on nothing but the text
    assert stored == [
        (marker.format(2001), json.dumps(long, separators=(",", ":"))),
        (json.dumps(exact, ensure_ascii=False, separators=(",", ":")), None),
        (marker.format(1025), json.dumps(over, ensure_ascii=False, separators=(",", ":"))),
        ('{"a":1}', None),
        (None, None),
    ]
    assert all(d is None or len(d) <= DETAILS_MAX_LENGTH for d, _ in stored)
    engine = db.engine()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT max(length(details)) FROM agent_actions")).scalar() \
            == 1024
    engine.dispose()


def test_postgresql_enforces_the_column_length(db: Db) -> None:
    """Why the rule exists: PostgreSQL refuses 1,025 characters, SQLite stores them."""
    with open_archive(db.url):
        pass
    engine = db.engine()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO simulations (simulation_id, parameters, "
                          "simulation_db_path) VALUES ('s', '{}', 'p')"))
        conn.execute(text("INSERT INTO agents (agent_id, simulation_id) VALUES ('a', 's')"))
    insert = text("INSERT INTO agent_actions (simulation_id, step_number, agent_id, "
                  "action_type, details) VALUES ('s', 1, 'a', 'move', :d)")
    if db.kind == "postgresql":
        with pytest.raises(Exception, match="too long"), engine.begin() as conn:
            conn.execute(insert, {"d": "x" * 1025})
    else:
        with engine.begin() as conn:
            conn.execute(insert, {"d": "x" * 1025})
    engine.dispose()


# -- AgentFarm's own models open an archive agentmem created ------------------------------


class Base(DeclarativeBase):
    pass


class SimulationModel(Base):
    __tablename__ = "simulations"
    simulation_id = Column(String(64), primary_key=True)
    experiment_id = Column(String(64), nullable=True)
    start_time = Column(DateTime)
    end_time = Column(DateTime)
    status = Column(String(50), default="pending")
    parameters = Column(JSON, nullable=False)
    results_summary = Column(JSON, nullable=True)
    simulation_db_path = Column(String(255), nullable=False)


class AgentModel(Base):
    __tablename__ = "agents"
    agent_id = Column(String(64), primary_key=True)
    simulation_id = Column(String(64), ForeignKey("simulations.simulation_id"))
    birth_time = Column(Integer)
    death_time = Column(Integer)
    agent_type = Column(String(50))
    position_x = Column(Float(precision=6))
    position_y = Column(Float(precision=6))
    initial_resources = Column(Float(precision=6))
    starting_health = Column(Float(precision=6))
    genome_id = Column(String(64))
    generation = Column(Integer)
    action_weights = Column(JSON, nullable=True)
    actions = relationship("ActionModel", back_populates="agent")


class ActionModel(Base):
    __tablename__ = "agent_actions"
    action_id = Column(Integer, primary_key=True, autoincrement=True)
    simulation_id = Column(String(64), ForeignKey("simulations.simulation_id"), nullable=True)
    step_number = Column(Integer, nullable=False)
    agent_id = Column(String(64), ForeignKey("agents.agent_id"), nullable=False)
    action_type = Column(String(20), nullable=False)
    action_target_id = Column(String(64), nullable=True)
    reward = Column(Float(precision=6), nullable=True)
    details = Column(String(1024), nullable=True)
    module_type = Column(String(50), nullable=True)
    module_id = Column(String(64), nullable=True)
    agent = relationship("AgentModel", back_populates="actions")


def test_agentfarm_models_open_an_agentmem_archive(db: Db) -> None:
    actions = make_actions(100)
    with open_archive(db.url) as archive:
        archive.write(actions)
    engine = db.engine()
    Base.metadata.create_all(engine)  # what AgentFarm does on start: a no-op here
    with Session(engine) as session:
        rows = session.scalars(select(ActionModel).order_by(ActionModel.action_id)).all()
        assert len(rows) == 100
        for orm_row, a in zip(rows, actions, strict=True):
            row: Any = orm_row  # AgentFarm declares Column(...) attributes, untyped
            assert (row.simulation_id, row.agent_id, row.step_number, row.action_type) == (
                a.simulation_id, a.agent_id, a.step_number, a.action_type)
            assert row.action_target_id == a.action_target_id
            assert row.reward == a.reward
            assert row.module_type == a.module_type
            assert row.module_id == a.module_id
            assert (None if row.details is None else json.loads(row.details)) == a.details
            assert row.agent.agent_id == a.agent_id
            assert row.agent.simulation_id == a.simulation_id
        sim = session.get(SimulationModel, "sim_3f9a2c1d")
        assert sim is not None
        assert sim.parameters == {}
        # AgentFarm can go on logging into it
        session.add(ActionModel(simulation_id="sim_3f9a2c1d", step_number=99,
                                agent_id=actions[0].agent_id, action_type="pass"))
        session.commit()
    engine.dispose()
    with open_archive(db.url) as archive:
        back = archive.read("sim_3f9a2c1d")
    assert back[:100] == actions
    assert back[100].action_type == "pass"
    assert back[100].action_id is None


# -- an existing AgentFarm database is the archive as it is ------------------------------


def _agentfarm_ddl(kind: str, generation: str) -> list[str]:
    """AgentFarm's tables as its models create them (SQLAlchemy's DDL), per generation."""
    pk = "INTEGER NOT NULL" if kind == "sqlite" else "SERIAL NOT NULL"
    real = "FLOAT" if kind == "sqlite" else "FLOAT(6)"
    ts = "DATETIME" if kind == "sqlite" else "TIMESTAMP WITHOUT TIME ZONE"
    ddl = [
        f"""CREATE TABLE simulations (
            simulation_id VARCHAR(64) NOT NULL, experiment_id VARCHAR(64),
            start_time {ts}, end_time {ts}, status VARCHAR(50), parameters JSON NOT NULL,
            results_summary JSON, simulation_db_path VARCHAR(255) NOT NULL,
            PRIMARY KEY (simulation_id))""",
        f"""CREATE TABLE agents (
            agent_id VARCHAR(64) NOT NULL, simulation_id VARCHAR(64), birth_time INTEGER,
            death_time INTEGER, agent_type VARCHAR(50), position_x {real}, position_y {real},
            initial_resources {real}, starting_health {real}, starvation_counter INTEGER,
            genome_id VARCHAR(64), generation INTEGER, action_weights JSON,
            PRIMARY KEY (agent_id),
            FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id))""",
    ]
    if generation == "old":
        ddl += [
            f"""CREATE TABLE agent_states (
                id VARCHAR(128) NOT NULL, simulation_id VARCHAR(64), step_number INTEGER,
                agent_id VARCHAR(64) NOT NULL, resource_level {real}, PRIMARY KEY (id),
                FOREIGN KEY(agent_id) REFERENCES agents (agent_id))""",
            f"""CREATE TABLE agent_actions (
                action_id {pk}, simulation_id VARCHAR(64), step_number INTEGER NOT NULL,
                agent_id VARCHAR(64) NOT NULL, action_type VARCHAR(20) NOT NULL,
                action_target_id VARCHAR(64), state_before_id VARCHAR(128),
                state_after_id VARCHAR(128), resources_before {real},
                resources_after {real}, reward {real}, details VARCHAR(1024),
                PRIMARY KEY (action_id),
                FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id),
                FOREIGN KEY(agent_id) REFERENCES agents (agent_id),
                FOREIGN KEY(action_target_id) REFERENCES agents (agent_id),
                FOREIGN KEY(state_before_id) REFERENCES agent_states (id),
                FOREIGN KEY(state_after_id) REFERENCES agent_states (id))""",
        ]
    else:
        ddl += [
            f"""CREATE TABLE agent_actions (
                action_id {pk}, simulation_id VARCHAR(64), step_number INTEGER NOT NULL,
                agent_id VARCHAR(64) NOT NULL, action_type VARCHAR(20) NOT NULL,
                action_target_id VARCHAR(64), reward {real}, details VARCHAR(1024),
                module_type VARCHAR(50), module_id VARCHAR(64),
                PRIMARY KEY (action_id),
                FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id),
                FOREIGN KEY(agent_id) REFERENCES agents (agent_id))""",
            "CREATE INDEX idx_agent_actions_module_type ON agent_actions (module_type)",
        ]
    ddl += [
        "CREATE INDEX idx_agent_actions_step_number ON agent_actions (step_number)",
        "CREATE INDEX idx_agent_actions_agent_id ON agent_actions (agent_id)",
        "CREATE INDEX idx_agent_actions_action_type ON agent_actions (action_type)",
    ]
    return ddl


def _shape(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in insp.get_table_names():
        if table == "agentmem_action_extras":
            continue
        out[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"])
                   for f in insp.get_foreign_keys(table)),
        )
    return out


@pytest.mark.parametrize("generation", ["old", "new"])
def test_existing_agentfarm_database_is_the_archive(db: Db, generation: str) -> None:
    engine = db.engine()
    with engine.begin() as conn:
        for stmt in _agentfarm_ddl(db.kind, generation):
            conn.execute(text(stmt))
        conn.execute(text(
            "INSERT INTO simulations (simulation_id, status, parameters, simulation_db_path) "
            "VALUES ('sim_farm01', 'running', '{\"seed\": 1}', 'farm.db')"))
        for agent in ("agent_f1", "agent_f2"):
            conn.execute(text(
                "INSERT INTO agents (agent_id, simulation_id, agent_type, birth_time) "
                f"VALUES ('{agent}', 'sim_farm01', 'SystemAgent', 0)"))
        conn.execute(text(
            "INSERT INTO agent_actions (simulation_id, step_number, agent_id, action_type, "
            "action_target_id, reward, details) VALUES ('sim_farm01', 0, 'agent_f1', "
            "'attack', 'agent_f2', 0.5, '{\"damage_dealt\": 2.0}')"))
    before = _shape(engine)
    assert "agentmem_action_extras" not in inspect(engine).get_table_names()

    common: dict[str, Any] = {"simulation_id": "sim_farm01", "action_type": "gather"}
    actions = [
        Action(agent_id="agent_f1", step_number=1, action_id="agent_f1-1-gather",
               reward=1.25, action_target_id="agent_f2", details={"amount_gathered": 3},
               position=(1.5, 2.5), **common),
        Action(agent_id="agent_new", step_number=1, action_id="agent_new-1-gather",
               reward=-0.5, details={"x": "y" * 1500}, module_type="dqn", module_id="m7",
               resources_before=10.5, resources_after=12.0, stored_at=1_700_000_001,
               embedding=np.array([0.5, 1.0], dtype=np.float32), **common),
        Action(agent_id="agent_f2", step_number=2, action_id="agent_f2-2-gather",
               action_target_id="agent_f3", **common),
    ]
    with open_archive(db.url) as archive:
        expected_columns = {
            "old": {"state_before_id", "state_after_id", "resources_before", "resources_after"},
            "new": {"module_type", "module_id"},
        }[generation]
        assert expected_columns <= archive.action_columns
        assert archive.write(actions) == 3
        assert archive.write(actions) == 0
        back = archive.read("sim_farm01")
    assert back[1:] == actions
    farm_row = back[0]
    assert (farm_row.agent_id, farm_row.action_type, farm_row.action_target_id,
            farm_row.reward, farm_row.details, farm_row.action_id) == (
        "agent_f1", "attack", "agent_f2", 0.5, {"damage_dealt": 2.0}, None)

    assert _shape(engine) == before  # AgentFarm's tables: not a column or index changed
    assert "agentmem_action_extras" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        sims = conn.execute(text("SELECT simulation_id, status FROM simulations")).all()
        assert sims == [("sim_farm01", "running")]  # its own row, untouched
        agents: dict[str, Any] = {
            r[0]: r[1] for r in conn.execute(text("SELECT agent_id, agent_type FROM agents"))}
        # a missing agent row is written first; in the old generation also for the
        # target, which that generation's foreign key requires to be an agent
        assert agents["agent_f1"] == "SystemAgent"
        assert agents["agent_new"] is None
        assert ("agent_f3" in agents) == (generation == "old")
        extra = conn.execute(text(
            "SELECT extra_fields FROM agentmem_action_extras WHERE action_id = "
            "'agent_new-1-gather'")).scalar()
    # fields the table lacks are kept beside it
    kept = json.loads(str(extra))
    if generation == "old":
        assert kept == {"module_type": "dqn", "module_id": "m7"}
    else:
        assert kept == {"resources_before": 10.5, "resources_after": 12.0}
    engine.dispose()


def test_a_foreign_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE agent_actions (id INTEGER PRIMARY KEY, what TEXT)"))
    engine.dispose()
    with pytest.raises(BackendError, match="lacks"):
        open_archive(path)
