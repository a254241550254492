"""Sync both ways (agentmem.dualwrite.sync) on a real Redis/Valkey and real SQLite files.

SQL -> Redis loads an AgentFarm-shaped database of 10,000 actions (each generation
of ``agent_actions``, written with plain SQL as AgentFarm would) into an empty
Redis and checks every key of the layout against SQL queries on that database.
Redis -> SQL archives what ``add_many`` wrote and compares the two reads.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.sync import archive_to_sql, load_from_sql
from agentmem.errors import InvalidInput
from agentmem.tiers.reads import history

SIM = "sim_af_01"
N = 10_000
TYPES = ["move", "gather", "share", "attack", "defend", "reproduce", "action_7"]

# -- an AgentFarm simulation database, as AgentFarm's models create and fill it --------

_SIMS = """CREATE TABLE simulations (
    simulation_id VARCHAR(64) NOT NULL, experiment_id VARCHAR(64), start_time DATETIME,
    end_time DATETIME, status VARCHAR(50), parameters JSON NOT NULL, results_summary JSON,
    simulation_db_path VARCHAR(255) NOT NULL, PRIMARY KEY (simulation_id))"""
_AGENTS = """CREATE TABLE agents (
    agent_id VARCHAR(64) NOT NULL, simulation_id VARCHAR(64), birth_time INTEGER,
    death_time INTEGER, agent_type VARCHAR(50), position_x FLOAT, position_y FLOAT,
    initial_resources FLOAT, starting_health FLOAT, starvation_counter INTEGER,
    genome_id VARCHAR(64), generation INTEGER, action_weights JSON, PRIMARY KEY (agent_id),
    FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id))"""
_OLD = [
    """CREATE TABLE agent_states (
        id VARCHAR(128) NOT NULL, simulation_id VARCHAR(64), step_number INTEGER,
        agent_id VARCHAR(64) NOT NULL, resource_level FLOAT, PRIMARY KEY (id),
        FOREIGN KEY(agent_id) REFERENCES agents (agent_id))""",
    """CREATE TABLE agent_actions (
        action_id INTEGER NOT NULL, simulation_id VARCHAR(64), step_number INTEGER NOT NULL,
        agent_id VARCHAR(64) NOT NULL, action_type VARCHAR(20) NOT NULL,
        action_target_id VARCHAR(64), state_before_id VARCHAR(128),
        state_after_id VARCHAR(128), resources_before FLOAT, resources_after FLOAT,
        reward FLOAT, details VARCHAR(1024), PRIMARY KEY (action_id),
        FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id),
        FOREIGN KEY(agent_id) REFERENCES agents (agent_id),
        FOREIGN KEY(action_target_id) REFERENCES agents (agent_id),
        FOREIGN KEY(state_before_id) REFERENCES agent_states (id),
        FOREIGN KEY(state_after_id) REFERENCES agent_states (id))""",
]
_NEW = [
    """CREATE TABLE agent_actions (
        action_id INTEGER NOT NULL, simulation_id VARCHAR(64), step_number INTEGER NOT NULL,
        agent_id VARCHAR(64) NOT NULL, action_type VARCHAR(20) NOT NULL,
        action_target_id VARCHAR(64), reward FLOAT, details VARCHAR(1024),
        module_type VARCHAR(50), module_id VARCHAR(64), PRIMARY KEY (action_id),
        FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id),
        FOREIGN KEY(agent_id) REFERENCES agents (agent_id))""",
    "CREATE INDEX idx_agent_actions_module_type ON agent_actions (module_type)",
]
_INDEXES = [
    "CREATE INDEX idx_agent_actions_step_number ON agent_actions (step_number)",
    "CREATE INDEX idx_agent_actions_agent_id ON agent_actions (agent_id)",
    "CREATE INDEX idx_agent_actions_action_type ON agent_actions (action_type)",
]


def build_agentfarm_db(path: Path, generation: str, n: int = N, seed: int = 11) -> None:
    """``n`` actions of one simulation, 40 agents, some (agent, step, type) twice."""
    rng = random.Random(seed)
    agents = [f"agent_{i:03d}" for i in range(40)]
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    for stmt in [_SIMS, _AGENTS, *(_OLD if generation == "old" else _NEW), *_INDEXES]:
        con.execute(stmt)
    con.execute("INSERT INTO simulations (simulation_id, status, parameters, "
                "simulation_db_path) VALUES (?, 'running', ?, ?)",
                (SIM, json.dumps({"width": 100}), str(path)))
    con.executemany("INSERT INTO agents (agent_id, simulation_id, birth_time, agent_type, "
                    "position_x, position_y) VALUES (?, ?, 0, 'SystemAgent', ?, ?)",
                    [(a, SIM, rng.uniform(0, 100), rng.uniform(0, 100)) for a in agents])
    rows: list[dict[str, Any]] = []
    step = 0
    while len(rows) < n:
        for agent in agents:
            if len(rows) >= n:
                break
            kind = rng.choice(TYPES)
            repeat = 3 if rng.random() < 0.01 else 2 if rng.random() < 0.06 else 1
            for _ in range(repeat):
                if len(rows) >= n:
                    break
                row: dict[str, Any] = {
                    "simulation_id": SIM, "step_number": step, "agent_id": agent,
                    "action_type": kind,
                    "action_target_id": rng.choice(agents) if rng.random() < 0.4 else None,
                    "reward": round(rng.uniform(-2, 2), 6) if rng.random() < 0.8 else None,
                    "details": json.dumps({"success": rng.random() < 0.5,
                                           "amount": rng.randint(0, 9)})
                    if rng.random() < 0.7 else None,
                }
                if generation == "old":
                    row["resources_before"] = rng.uniform(0, 50)
                    row["resources_after"] = rng.uniform(0, 50)
                elif rng.random() < 0.3:
                    row["module_type"] = "dqn"
                    row["module_id"] = f"mod_{agent}"
                rows.append(row)
        step += 1
    cols = ["simulation_id", "step_number", "agent_id", "action_type", "action_target_id",
            "reward", "details"]
    cols += (["resources_before", "resources_after"] if generation == "old"
             else ["module_type", "module_id"])
    con.executemany(
        f"INSERT INTO agent_actions ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [tuple(r.get(c) for c in cols) for r in rows])
    con.commit()
    con.close()


def sql_rows(path: Path) -> list[dict[str, Any]]:
    """Every action row with its agentmem id (side table), in row-id order."""
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(
        "SELECT a.*, x.action_id AS sid FROM agent_actions a "
        "JOIN agentmem_action_extras x ON x.row_id = a.action_id "
        "WHERE a.simulation_id = ? ORDER BY a.action_id", (SIM,))]
    con.close()
    return rows


def sql_scalar(path: Path, query: str, *args: Any) -> Any:
    con = sqlite3.connect(path)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def digest(r: redis.Redis) -> tuple[int, str]:
    """DBSIZE and a hash over every key's type, content (DUMP) and expiry time."""
    h = hashlib.sha256()
    keys = sorted(r.scan_iter(count=5000))
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
        pipe.dump(k)
        pipe.execute_command("EXPIRETIME", k)
    replies = pipe.execute()
    for k, (t, d, e) in zip(keys, zip(*[iter(replies)] * 3, strict=True), strict=True):
        h.update(k + b"\0" + t + b"\0" + d + b"\0" + str(e).encode() + b"\n")
    return int(r.dbsize()), h.hexdigest()


def _z(r: redis.Redis, key: str) -> list[tuple[str, float]]:
    return [(m.decode(), s) for m, s in r.zrange(key, 0, -1, withscores=True)]


# -- SQL -> Redis ---------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["old", "new"])
def test_load_agentfarm_database_rebuilds_every_index(
    mem: agentmem.Memory, r: redis.Redis, tmp_path: Path, generation: str
) -> None:
    path = tmp_path / "simulation.db"
    build_agentfarm_db(path, generation)
    assert r.dbsize() == 0
    with open_archive(path) as archive:
        assert load_from_sql(archive, mem, SIM, chunk=3000) == N
    rows = sql_rows(path)
    assert len(rows) == N  # every row got an id in the side table
    ids = [row["sid"] for row in rows]
    assert len(set(ids)) == N
    # ids follow the rule, duplicates numbered in row order
    seen: Counter[tuple[str, str]] = Counter()
    for row in rows:
        base = f"{row['agent_id']}-{row['step_number']}-{row['action_type']}"
        n = seen[(row["agent_id"], base)]
        assert row["sid"] == (base if n == 0 else f"{base}.{n}")
        seen[(row["agent_id"], base)] += 1
    assert any(sid.endswith(".1") for sid in ids)
    assert any(sid.endswith(".2") for sid in ids)

    lay = mem.actions.layout
    expected_keys: set[str] = set()
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_agent[row["agent_id"]].append(row)

    pipe = r.pipeline(transaction=False)
    agents = sorted(by_agent)
    for agent in agents:
        pipe.zrange(lay.key("timeline", agent_id=agent), 0, -1, withscores=True)
        pipe.zrange(lay.key("relative_index", agent_id=agent), 0, -1, withscores=True)
        pipe.zrange(lay.key("rewards", agent_id=agent), 0, -1, withscores=True)
    replies = iter(pipe.execute())
    for agent in agents:
        mine = by_agent[agent]
        timeline = sorted(((x["sid"], float(x["step_number"])) for x in mine),
                          key=lambda p: (p[1], p[0]))
        rewards = sorted(((x["sid"], float(x["reward"])) for x in mine
                          if x["reward"] is not None), key=lambda p: (p[1], p[0]))
        got_t, got_rel, got_rw = ([(m.decode(), s) for m, s in next(replies)] for _ in "trw")
        assert got_t == timeline, agent
        assert got_rel == timeline[-20:], agent
        assert got_rw == rewards, agent
        expected_keys |= {lay.key(f, agent_id=agent) for f in ("timeline", "relative_index")}
        if rewards:
            expected_keys.add(lay.key("rewards", agent_id=agent))

    # per-agent type and target sets, from GROUP BY queries on the database
    for family, column in (("types", "action_type"), ("targets", "action_target_id")):
        groups: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            if row[column] is not None:
                groups[(row["agent_id"], row[column])].add(row["sid"])
        counts = {(a, v): c for a, v, c in sql_scalar(
            path, f"SELECT agent_id, {column}, COUNT(*) FROM agent_actions "
            f"WHERE simulation_id = ? AND {column} IS NOT NULL GROUP BY agent_id, {column}",
            SIM)}
        assert {k: len(v) for k, v in groups.items()} == counts
        pipe = r.pipeline(transaction=False)
        keys = [lay.key(family, agent_id=a, **{column: v}) for a, v in sorted(groups)]
        for key in keys:
            pipe.smembers(key)
        for key, (a, v), members in zip(keys, sorted(groups), pipe.execute(), strict=True):
            assert {m.decode() for m in members} == groups[(a, v)], key
        expected_keys |= set(keys)

    # simulation-level keys
    sim_list = lay.key("sim_actions", simulation_id=SIM)
    assert r.llen(sim_list) == N
    assert [m.decode() for m in r.lrange(sim_list, 0, -1)] == ids  # row order
    per_step: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        per_step[row["step_number"]].add(row["sid"])
    sql_steps = [s for (s,) in sql_scalar(
        path, "SELECT DISTINCT step_number FROM agent_actions WHERE simulation_id = ? "
        "ORDER BY step_number", SIM)]
    assert sorted(per_step) == sql_steps
    steps_key = lay.key("sim_steps", simulation_id=SIM)
    assert _z(r, steps_key) == [(str(s), float(s)) for s in sql_steps]
    assert mem.actions.steps(SIM) == sql_steps
    pipe = r.pipeline(transaction=False)
    step_keys = [lay.key("sim_step", simulation_id=SIM, step_number=s) for s in sql_steps]
    for key in step_keys:
        pipe.smembers(key)
    for s, members in zip(sql_steps, pipe.execute(), strict=True):
        assert {m.decode() for m in members} == per_step[s], s
    by_type = dict(sql_scalar(path, "SELECT action_type, COUNT(*) FROM agent_actions "
                                    "WHERE simulation_id = ? GROUP BY action_type", SIM))
    assert mem.actions.type_counts(SIM) == by_type
    expected_keys |= {sim_list, steps_key, lay.key("sim_by_type", simulation_id=SIM),
                      *step_keys}

    # every action hash, field by field against its row
    hash_keys = [lay.key("action", agent_id=row["agent_id"], action_id=row["sid"])
                 for row in rows]
    pipe = r.pipeline(transaction=False)
    for key in hash_keys:
        pipe.hgetall(key)
    hashes = pipe.execute()
    for row, h in zip(rows, hashes, strict=True):
        fields = {k.decode(): v.decode() for k, v in h.items()}
        stored_at = fields.pop("stored_at")
        assert int(stored_at) > 1_600_000_000
        want = {"action_id": row["sid"], "simulation_id": SIM,
                "step_number": str(row["step_number"]), "agent_id": row["agent_id"],
                "action_type": row["action_type"]}
        for name in ("action_target_id", "module_type", "module_id"):
            if row.get(name) is not None:
                want[name] = row[name]
        for name in ("reward", "resources_before", "resources_after"):
            if row.get(name) is not None:
                want[name] = repr(float(row[name]))
        details = fields.pop("details", None)
        assert (None if details is None else json.loads(details)) == (
            None if row["details"] is None else json.loads(row["details"]))
        assert fields == want, row["sid"]
    expected_keys |= set(hash_keys)
    # the hashes carry the memory's TTL; the indices none
    pipe = r.pipeline(transaction=False)
    for key in hash_keys[::250]:
        pipe.ttl(key)
    assert all(0 < t <= 86400 for t in pipe.execute())
    assert r.ttl(sim_list) == -1

    # nothing else was written
    assert {k.decode() for k in r.scan_iter(count=5000)} == expected_keys
    before = digest(r)
    assert before[0] == len(expected_keys)

    # the second run stores nothing and changes no key, nor the side table
    with open_archive(path) as archive:
        assert load_from_sql(archive, mem, SIM, chunk=3000) == 0
        assert archive.assign_ids(SIM) == 0
    assert digest(r) == before
    assert sql_rows(path) == rows
    # the read API agrees with the database
    assert [a.action_id for a in mem.actions.simulation_actions(SIM)] == ids


def test_load_keeps_the_memory_ttl_and_skips_what_redis_has(
    connect: Any, r: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "small.db"
    build_agentfarm_db(path, "new", n=300)
    m = connect(ttl=1234)
    with open_archive(path) as archive:
        # a part already in Redis (same ids) is skipped, the rest is stored
        archive.assign_ids(SIM)
        part = archive.read(SIM)[:100]
        assert len(m.actions.add_many(part)) == 100
        assert load_from_sql(archive, m, SIM, chunk=64) == 200
        assert load_from_sql(archive, m, SIM, chunk=64) == 0
    rows = sql_rows(path)
    key = m.actions.layout.key("action", agent_id=rows[-1]["agent_id"],
                               action_id=rows[-1]["sid"])
    assert 0 < r.ttl(key) <= 1234
    assert r.llen(m.actions.layout.key("sim_actions", simulation_id=SIM)) == 300


# -- Redis -> SQL ---------------------------------------------------------------------------


def make_actions(n: int, seed: int = 3) -> list[Action]:
    rng = random.Random(seed)
    agents = [f"agent_{i}" for i in range(8)]
    out = []
    for i in range(n):
        agent, step, kind = agents[i % 8], i // 8, TYPES[i % len(TYPES)]
        out.append(Action(
            agent_id=agent, simulation_id="sim_r2s", step_number=step, action_type=kind,
            action_id=f"{agent}-{step}-{kind}.x{i}" if i % 10 == 0 else None,
            action_target_id=agents[(i + 3) % 8] if i % 3 == 0 else None,
            reward=rng.uniform(-1, 1) if i % 4 else None,
            resources_before=rng.uniform(0, 9) if i % 5 == 0 else None,
            details={"i": i, "note": "é" * (i % 4)} if i % 2 else None,
            position=(rng.uniform(0, 50), rng.uniform(0, 50)) if i % 3 == 1 else None,
            embedding=np.array([rng.random() for _ in range(4)], dtype=np.float32)
            if i % 6 == 2 else None,
            module_type="ppo" if i % 7 == 0 else None,
        ))
        if i % 50 == 49:  # the same agent, step and type again: a .1 id
            prev = out[-1]
            out.append(prev.model_copy(update={"action_id": None}))
    return out


def test_archive_to_sql_writes_what_the_archive_lacks(
    mem: agentmem.Memory, r: redis.Redis, tmp_path: Path
) -> None:
    actions = make_actions(1500)
    stored = mem.actions.add_many(actions)
    with open_archive(tmp_path / "archive.db") as archive:
        assert archive_to_sql(mem, archive, "sim_r2s", chunk=400) == len(actions)
        in_redis = mem.actions.simulation_actions("sim_r2s")
        assert [a.action_id for a in in_redis] == [a.action_id for a in stored]
        assert archive.read("sim_r2s") == in_redis
        # the second run inserts nothing
        assert archive_to_sql(mem, archive, "sim_r2s", chunk=400) == 0
        assert archive.count("sim_r2s") == len(actions)
        # only what is new is archived
        more = make_actions(60, seed=4)[:60]
        more = [a.model_copy(update={"step_number": a.step_number + 10_000, "action_id": None})
                for a in more]
        mem.actions.add_many(more)
        assert archive_to_sql(mem, archive, "sim_r2s", chunk=400) == 60
        assert archive.read("sim_r2s") == mem.actions.simulation_actions("sim_r2s")
        with pytest.raises(InvalidInput):
            archive_to_sql(mem, archive, "sim_r2s", chunk=0)
    # and back: an empty Redis warmed from that archive holds the same actions
    r.flushdb()
    with open_archive(tmp_path / "archive.db") as archive:
        total = len(actions) + 60
        assert load_from_sql(archive, mem, "sim_r2s", chunk=500) == total
        assert load_from_sql(archive, mem, "sim_r2s", chunk=500) == 0
        back = mem.actions.simulation_actions("sim_r2s")
        assert [a.model_copy(update={"stored_at": None}) for a in back] == [
            a.model_copy(update={"stored_at": None}) for a in archive.read("sim_r2s")]


def test_archive_to_sql_of_an_empty_simulation(mem: agentmem.Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        assert archive_to_sql(mem, archive, "sim_none") == 0
        assert load_from_sql(archive, mem, "sim_none") == 0
        assert archive.count() == 0


def test_load_skips_what_moved_to_intermediate_memory(
    connect: Any, r: redis.Redis, tmp_path: Path
) -> None:
    """Actions that ``maintain`` moved to IM are not stored in STM again: one id in one
    tier (``agentmem sync --to both`` after ``maintain`` held such ids in both)."""
    m = connect()
    actions = [Action(agent_id="a0", simulation_id=SIM, step_number=s, action_type="move")
               for s in range(30)]
    stored = m.actions.add_many(actions)
    tiers = agentmem.Tiers(m, agentmem.TierPolicy(stm_steps=5))
    tiers.maintain(now_step=29)
    in_im = {a.action_id for a in history(m, "a0")
             if isinstance(a, agentmem.IMAction)}
    assert len(in_im) == 25
    with open_archive(tmp_path / "archive.db") as archive:
        assert archive.write(stored) == 30
        assert load_from_sql(archive, m, SIM) == 0
    stm = {a.action_id for a in m.actions.timeline("a0")}
    assert len(stm) == 5
    assert not stm & in_im
