"""The archive and sync review: real Redis/Valkey, real SQLite files and PostgreSQL schemas.

- ``load_from_sql`` of two simulations that share agent ids loads both (docs/sync.md);
- a NUL in a free-text field is refused before anything is acknowledged;
- a different action under an archived id is refused, whatever the difference
  (docs/archive.md: exact, but float32 where the column is a ``REAL``);
- ``-0.0`` comes back as written from SQLite too;
- concurrent ``assign_ids`` / ``load_from_sql`` do not fail.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from typing import Any

import numpy as np
import pytest
import redis
import sqlalchemy as sa
from test_sql_archive import Db, db  # noqa: F401 - db: the sqlite/postgresql fixture

import agentmem
from agentmem import Action
from agentmem.backends.farmtables import farm_tables
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.sync import archive_to_sql, load_from_sql
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import DuplicateId, InvalidInput
from agentmem.tiers.reads import history


def _sim(sim: str, n: int = 5) -> list[Action]:
    return [Action(agent_id="agent_1", simulation_id=sim, step_number=s, action_type="move",
                   reward=float(s), details={"sim": sim}) for s in range(n)]


def _digest(r: redis.Redis) -> dict[bytes, bytes | None]:
    return {k: r.dump(k) for k in r.keys("*")}


def _content(a: Action) -> tuple[Any, ...]:
    return (a.simulation_id, a.agent_id, a.step_number, a.action_type, a.reward, a.details)


# -- 1. two simulations with the same agent ids -------------------------------------------


def test_load_from_sql_loads_a_second_simulation_with_the_same_agent_ids(
        db: Db, mem: agentmem.Memory, r: redis.Redis) -> None:  # noqa: F811
    with open_archive(db.url) as archive:
        for sim in ("s1", "s2"):
            archive.write(_sim(sim))
        assert load_from_sql(archive, mem, "s1") == 5
        assert load_from_sql(archive, mem, "s2") == 5  # was 0: s1's ids hid every row
        for sim in ("s1", "s2"):
            in_redis = mem.actions.simulation_actions(sim, 0, -1)
            archived = archive.read(sim)
            assert sorted(map(_content, in_redis)) == sorted(map(_content, archived))
            # the archive's ids are Redis's: archiving back inserts nothing
            assert {a.action_id for a in in_redis} == {a.action_id for a in archived}
            assert archive_to_sql(mem, archive, sim) == 0
        before = _digest(r)
        assert load_from_sql(archive, mem, "s2") == 0  # idempotent
        assert load_from_sql(archive, mem, "s1") == 0
        assert _digest(r) == before
        assert archive.count() == 10


def test_load_from_sql_stores_an_action_whose_id_another_simulation_holds_in_im(
        db: Db, connect: Any, r: redis.Redis) -> None:  # noqa: F811
    m = connect()
    with open_archive(db.url) as archive:
        archive.write(m.actions.add_many(_sim("s1", 10)))
        agentmem.Tiers(m, agentmem.TierPolicy(stm_steps=2)).maintain(now_step=9)
        assert sum(isinstance(a, agentmem.IMAction) for a in history(m, "agent_1")) == 8
        archive.write(_sim("s2", 10))
        assert load_from_sql(archive, m, "s2") == 10  # was 2: IM's s1 ids hid 8 rows
        assert len(m.actions.simulation_actions("s2", 0, -1)) == 10
        assert load_from_sql(archive, m, "s2") == 0
        assert load_from_sql(archive, m, "s1") == 0  # s1's own, in STM or IM: skipped


def test_load_from_sql_keeps_an_action_updated_in_redis_as_it_is(
        db: Db, mem: agentmem.Memory) -> None:  # noqa: F811
    """The same simulation, step and type under the id is this action, updated in Redis
    since (the archive keeps its version until ``maintain``): not stored a second time."""
    with open_archive(db.url) as archive:
        stored = mem.actions.add_many(_sim("s1"))
        archive.write(stored)
        mem.actions.update(stored[2].model_copy(update={"reward": 99.0}))
        assert load_from_sql(archive, mem, "s1") == 0
        got = mem.actions.simulation_actions("s1", 0, -1)
        assert len(got) == 5
        assert sorted(a.reward for a in got) == [0.0, 1.0, 3.0, 4.0, 99.0]
        assert {a.action_id for a in archive.read("s1")} == {a.action_id for a in got}


# -- 2. NUL in a text column ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["module_type", "module_id", "state_before_id",
                                   "state_after_id"])
def test_a_nul_in_a_text_field_is_refused_and_archiving_goes_on(
        db: Db, mem: agentmem.Memory, field: str) -> None:  # noqa: F811
    with open_archive(db.url) as archive:
        w = DualWriter(mem, archive, buffer_size=10)
        for i in range(30):
            if i == 3:
                with pytest.raises(InvalidInput, match=f"{field}.*NUL"):
                    Action(agent_id="a1", simulation_id="sim", step_number=i,
                           action_type="move", **{field: "bad\x00"})
                continue
            w.add(Action(agent_id="a1", simulation_id="sim", step_number=i,
                         action_type="move", **{field: "ok"}))
        w.close()  # raised BackendError on PostgreSQL for ever
        assert len(mem.actions.simulation_actions("sim", 0, -1)) == 29
        assert archive.count("sim") == 29


# -- 3. a different action under an archived id ----------------------------------------------

BASE: dict[str, Any] = {"agent_id": "a1", "simulation_id": "sim", "step_number": 1,
                        "action_type": "trade", "action_id": "a1-1-trade"}


@pytest.mark.parametrize("variant", [
    {"details": {"t": 1700001000.0, "qty": 1}},  # 1000 s later
    {"details": {"t": 1700000000.0, "qty": 1.0}},  # int vs float
    {"reward": -1e-13},  # the sign of a tiny reward
    {"reward": 1e-13 * (1 + 1e-9)},
    {"position": (1.0000001, 2.0)},
], ids=["details-time", "details-int-float", "reward-sign", "reward-ulps", "position"])
def test_a_different_action_under_an_archived_id_is_refused(
        db: Db, variant: dict[str, Any]) -> None:  # noqa: F811
    first = Action(**BASE, reward=1e-13, position=(1.0, 2.0),
                   details={"t": 1700000000.0, "qty": 1})
    with open_archive(db.url) as archive:
        assert archive.write([first]) == 1
        again = first.model_copy(update={"stored_at": 1_800_000_000})
        assert archive.write([again]) == 0  # the same action: skipped
        other = Action(**{**first.__dict__, **variant})
        with pytest.raises(DuplicateId):
            archive.write([other])
        assert archive.read("sim") == [first]


def test_a_real_column_compares_rewards_at_float32_precision(db: Db) -> None:  # noqa: F811
    """AgentFarm's own tables on PostgreSQL keep ``reward`` in a REAL: what it rounded is
    the same action; another float32 is not. SQLite's REAL is a double: exact."""
    engine = sa.create_engine(db.url if "://" in db.url else f"sqlite:///{db.url}")
    farm_tables(sa.MetaData(), "current").create_all(engine)
    if db.kind == "postgresql":  # as AgentFarm's Float(precision=N) makes it there
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE agent_actions ALTER COLUMN reward TYPE real")
    engine.dispose()
    third = 1 / 3
    first = Action(**BASE, reward=third)
    with open_archive(db.url) as archive:
        assert archive.float32_fields == (
            frozenset({"reward"}) if db.kind == "postgresql" else frozenset())
        assert archive.write([first]) == 1
        assert archive.write([first]) == 0
        back = archive.read("sim")[0]
        assert archive.write([back]) == 0
        if db.kind == "postgresql":
            assert back.reward != third  # rounded to float32 by the column
        up = float(np.nextafter(np.float32(third), np.float32(1)))
        with pytest.raises(DuplicateId):  # the next float32 up
            archive.write([first.model_copy(update={"reward": up})])
        with pytest.raises(DuplicateId):
            archive.write([first.model_copy(update={"reward": 1e-13})])


# -- 4. -0.0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["current", "original"])
def test_negative_zero_comes_back_as_written(db: Db, generation: str) -> None:  # noqa: F811
    zero = Action(**BASE, reward=-0.0, resources_before=-0.0, resources_after=0.0,
                  position=(-0.0, 1.0), details={"z": -0.0})
    with open_archive(db.url, generation=generation) as archive:  # type: ignore[arg-type]
        assert archive.write([zero]) == 1
        back = archive.read("sim")[0]
        assert back == zero
        for got in (back.reward, back.resources_before, back.position and back.position[0]):
            assert got == 0.0
            assert math.copysign(1.0, got) < 0
        assert math.copysign(1.0, back.resources_after or 0.0) > 0
        assert archive.write([zero]) == 0
        with pytest.raises(DuplicateId):  # +0.0 is another reward
            archive.write([zero.model_copy(update={"reward": 0.0})])


# -- 5. concurrent assign_ids / load_from_sql -----------------------------------------------

ROWS = 6000


def _farm_rows(db: Db) -> None:  # noqa: F811
    engine = sa.create_engine(db.url if "://" in db.url else f"sqlite:///{db.url}")
    md = farm_tables(sa.MetaData(), "current")
    md.create_all(engine)
    with engine.begin() as c:
        c.execute(md.tables["simulations"].insert(), {
            "simulation_id": "sim", "status": "running", "parameters": {},
            "simulation_db_path": "x"})
        c.execute(md.tables["agents"].insert(), {"agent_id": "a1", "simulation_id": "sim"})
        c.execute(md.tables["agent_actions"].insert(), [
            {"simulation_id": "sim", "step_number": i // 3, "agent_id": "a1",
             "action_type": "move"} for i in range(ROWS)])
    engine.dispose()
    open_archive(db.url).close()  # the side table


def _load(url: str, redis_url: str | None, q: Any) -> None:
    try:
        with open_archive(url) as archive:
            if redis_url is None:
                q.put(("ok", archive.assign_ids("sim")))
            else:
                m = agentmem.connect(redis_url)
                q.put(("ok", load_from_sql(archive, m, "sim", chunk=500)))
                m.close()
    except Exception as exc:  # reported to the test
        q.put(("error", repr(exc)))


@pytest.mark.parametrize("with_redis", [False, True], ids=["assign_ids", "load_from_sql"])
def test_concurrent_loads_of_one_simulation_all_succeed(
        db: Db, server: Any, r: redis.Redis, with_redis: bool) -> None:  # noqa: F811
    _farm_rows(db)
    ctx = mp.get_context("spawn")  # not fork: the test process has threads
    q = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(db.url, server.url if with_redis else None, q))
             for _ in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    assert [kind for kind, _ in results] == ["ok"] * 4, results
    assert sum(n for _, n in results) == ROWS  # each row given an id / stored once
    with open_archive(db.url) as archive:
        ids = [a.action_id for a in archive.read("sim")]
        assert None not in ids
        assert len(set(ids)) == ROWS
        assert archive.assign_ids("sim") == 0
    if with_redis:
        assert r.llen("simulation:sim:actions") == ROWS
