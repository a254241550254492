"""The AgentFarm drop-in: AgentFarm's schema, its whole DataLogger protocol, its rows.

AgentFarm cannot be installed for the test suite (it needs torch and more), so
``ReferenceLogger`` below does what AgentFarm's ``DataLogger`` (db2f8f27) does,
per ``/work/shared/reference/agentfarm.md``: rows built as it builds them, bulk
inserted through SQLAlchemy into tables whose DDL equals AgentFarm's own
``create_all`` (the snapshot in ``data/``, checked below). The same calls go to
AgentFarm's real logger in ``python -m benchmarks.agentfarm --identity``.
"""

from __future__ import annotations

import copy
import inspect
import json
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, event

import agentmem
from agentmem.backends.farmtables import GENERATIONS
from agentmem.backends.sql import SCHEMAS, open_archive
from agentmem.errors import BackendError, ConfigError, InvalidInput
from agentmem.integrations.agentfarm import AgentFarmLogger

SIM = "sim_3f9a2c1b"
AGENTS = [f"agent_{n:08x}" for n in range(0x1a2b3c00, 0x1a2b3c00 + 20)]
STEPS = 30
TYPES = ["defend", "attack", "gather", "share", "move", "reproduce", "pass", "communicate"]
DATA = Path(__file__).parent / "data"
AUTO = {"agent_actions": "action_id", "health_incidents": "incident_id",
        "resource_states": "id"}
"""Autoincrement keys: not compared."""


def ddl(path: Path) -> str:
    conn = sqlite3.connect(path)
    out = []
    for typ, name, table, sql in sorted(conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master")):
        if not table.startswith("agentmem_"):  # agentmem's own side table
            out += [f"{typ} {name}", str(sql)]
    conn.close()
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_archive_schema_is_agentfarms_own(tmp_path: Path, generation: str) -> None:
    snapshot = "".join(line for line in (DATA / f"agentfarm_{generation}.sql").open()
                       if not line.startswith("--"))
    with open_archive(tmp_path / "a.db", generation=generation) as archive:  # type: ignore[arg-type]
        assert archive.generation == generation
    assert ddl(tmp_path / "a.db") == snapshot
    with open_archive(tmp_path / "a.db") as again:  # reopened: its own generation
        assert again.generation == generation
    other = "current" if generation == "original" else "original"
    with pytest.raises(ConfigError, match="generation"):
        open_archive(tmp_path / "a.db", generation=other)  # type: ignore[arg-type]


# -- AgentFarm's DataLogger, as the reference describes it ---------------------------------


class ReferenceLogger:
    """AgentFarm's ``DataLogger`` (buffers, row mappings, bulk inserts) over Core."""

    def __init__(self, path: Path, simulation_id: str, generation: str = "current",
                 buffer_size: int = 1000) -> None:
        self.engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(self.engine, "connect")
        def _fk(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        self.tables = SCHEMAS[generation].tables  # type: ignore[index]
        SCHEMAS[generation].create_all(self.engine)  # type: ignore[index]
        self.simulation_id = simulation_id
        self.buffer_size = buffer_size
        self.actions: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            conn.execute(self.tables["simulations"].insert(), [{
                "simulation_id": simulation_id, "parameters": {},
                "simulation_db_path": str(path)}])

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.tables[table].insert(), rows)

    def log_agent_action(self, step_number, agent_id, action_type, action_target_id=None,
                         reward=None, details=None, module_type=None, module_id=None,
                         action_taken=None, action_taken_mapped=None, **old: Any) -> None:
        if step_number < 0:
            raise ValueError("step_number must be non-negative")
        if not isinstance(action_type, str):
            action_type = str(action_type)
        d = copy.deepcopy(details) if details else {}
        if action_taken is not None:
            d["action_taken"] = action_taken
        if action_taken_mapped is not None:
            d["action_taken_mapped"] = action_taken_mapped
        row = {"simulation_id": self.simulation_id, "step_number": step_number,
               "agent_id": agent_id, "action_type": action_type,
               "action_target_id": action_target_id, "reward": reward,
               "details": json.dumps(d) if d else None, **old}
        if "module_type" in self.tables["agent_actions"].c:
            row["module_type"] = module_type
            row["module_id"] = str(module_id) if module_id is not None else None
        self.actions.append(row)
        if len(self.actions) >= self.buffer_size:
            self.flush_all_buffers()

    def log_health_incident(self, step_number, agent_id, health_before, health_after, cause,
                            details=None) -> None:
        self.health.append({"simulation_id": self.simulation_id, "step_number": step_number,
                            "agent_id": agent_id, "health_before": health_before,
                            "health_after": health_after, "cause": cause,
                            "details": json.dumps(details) if details else None})

    def log_agents_batch(self, data: list[dict[str, Any]]) -> None:
        self._insert("agents", [{
            "simulation_id": d["simulation_id"], "agent_id": d["agent_id"],
            "birth_time": d["birth_time"], "agent_type": d["agent_type"],
            "position_x": d["position"][0], "position_y": d["position"][1],
            "initial_resources": d["initial_resources"],
            "starting_health": d["starting_health"], "genome_id": d.get("genome_id"),
            "generation": d.get("generation", 0), "action_weights": d.get("action_weights")}
            for d in data])

    def log_step(self, step_number, agent_states, resource_states, metrics) -> None:
        states = {}
        for s in agent_states:
            sid = f"{self.simulation_id}:{s[0]}-{step_number}"
            states[sid] = {"simulation_id": self.simulation_id, "step_number": step_number,
                           "agent_id": s[0], "position_x": s[1], "position_y": s[2],
                           "resource_level": s[3], "current_health": s[4],
                           "starting_health": s[5], "starvation_counter": s[6],
                           "is_defending": bool(s[7]), "total_reward": s[8], "age": s[9],
                           "id": sid}
        self._insert("agent_states", list(states.values()))
        self.log_resources(step_number, resource_states)
        self._insert("simulation_steps", [{"simulation_id": self.simulation_id,
                                           "step_number": step_number,
                                           "resources_consumed": 0.0, **metrics}])

    def log_resources(self, step: int, states: list[tuple[Any, ...]]) -> None:
        self._insert("resource_states", [{
            "simulation_id": self.simulation_id, "step_number": step, "resource_id": s[0],
            "amount": s[1], "position_x": s[2], "position_y": s[3]} for s in states])

    def flush_if_needed(self) -> None:
        pass  # the 30 s interval never passes in the test

    def flush_all_buffers(self) -> None:
        self._insert("agent_actions", self.actions)
        self._insert("health_incidents", self.health)
        self.actions, self.health = [], []


def simulation_calls(seed: int = 7) -> list[dict[str, Any]]:
    """The ``log_agent_action`` keyword calls of a small simulation, step by step."""
    rng = random.Random(seed)
    calls: list[dict[str, Any]] = []
    for step in range(STEPS):
        for agent in AGENTS:
            kind = TYPES[rng.randrange(len(TYPES))]
            call: dict[str, Any] = {"step_number": step, "agent_id": agent, "action_type": kind}
            if kind == "move":
                old = (rng.randrange(50), rng.randrange(50))
                call["details"] = {"old_position": old, "new_position": (old[0] + 1, old[1]),
                                   "distance": 1.0, "path": {"via": [old, "é"]}}
            elif kind == "gather":
                call["action_target_id"] = rng.randrange(10)  # an int resource id
                call["details"] = {"amount_gathered": rng.random() * 3, "resource_id": "r"}
            elif kind in ("attack", "share"):
                target = rng.choice(AGENTS)
                call["action_target_id"] = target
                call["details"] = {"target_id": target, "damage_dealt": rng.randrange(5),
                                   "target_position": (rng.random(), rng.random())}
            elif kind == "pass":
                call["details"] = {}  # empty: NULL
            if rng.random() < 0.8:
                call["reward"] = round(rng.uniform(-1, 2), 6)
            if rng.random() < 0.5:
                call["action_taken"] = TYPES.index(kind)
            if rng.random() < 0.05:
                call["action_type"] = rng.randrange(8)  # not a string: str()-ed
            calls.append(call)
            if rng.random() < 0.3:  # the learning module's row: a duplicate (agent, step, type)
                calls.append({
                    "step_number": step, "agent_id": agent,
                    "action_type": kind if rng.random() < 0.5 else f"action_{rng.randrange(8)}",
                    "reward": 0.25, "module_type": "dqn",
                    "module_id": rng.choice([f"dqn_{agent[-4:]}", rng.randrange(100)]),
                    "action_taken": rng.randrange(8), "action_taken_mapped": kind,
                    "details": {"epsilon": 0.1, "q": [0.5, 1.5]},
                })
    return calls


def table_rows(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    skip = {AUTO.get(table), "start_time"}
    order = AUTO.get(table, "rowid")
    out = [{k: r[k] for k in r.keys() if k not in skip}  # noqa: SIM118 - a sqlite3.Row
           for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    conn.close()
    return out


def drive(logger: Any, calls: list[dict[str, Any]], *, farm: bool = True) -> None:
    """The calls of a simulation: agents first, then per step actions, health, a step."""
    logger.log_agents_batch([{
        "simulation_id": SIM, "agent_id": a, "birth_time": 0, "agent_type": "SystemAgent",
        "position": (float(n), 2.5), "initial_resources": 10.0, "starting_health": 100.0,
        "generation": n % 3, "action_weights": {"move": 0.5, "gather": 0.5}}
        for n, a in enumerate(AGENTS)])
    step = 0
    for call in calls:
        if call["step_number"] != step:
            if farm:
                logger.log_health_incident(step, AGENTS[step % 20], 10.0, 7.5, "attack",
                                           {"by": AGENTS[0]} if step % 2 else None)
                logger.log_step(step, [(a, 1.0, 2.0, 5.0, 90.0, 100.0, 0, step % 2, 1.5, step)
                                       for a in AGENTS[:5]],
                                [(f"resource_{k}", 3.0, 1.0, 1.0) for k in range(3)],
                                {"total_agents": 20, "births": 0, "deaths": 1})
            logger.flush_if_needed()  # once per step, as AgentFarm's loop does
            step = call["step_number"]
        logger.log_agent_action(**call)
    logger.flush_all_buffers()


@pytest.mark.parametrize("mode", ["buffered", "buffered+thread", "redis", "background"])
def test_every_table_holds_agentfarms_rows(mem, tmp_path, mode):
    calls = simulation_calls()
    reference = ReferenceLogger(tmp_path / "agentfarm.db", SIM, buffer_size=100)
    drive(reference, calls)
    reference.engine.dispose()
    options: dict[str, Any] = {
        "background": {"background": True},
        "buffered+thread": {"archive_thread": True},  # the archive written in a thread
    }.get(mode, {"durability": mode})
    with open_archive(tmp_path / "agentmem.db") as archive, AgentFarmLogger(
            mem, archive, SIM, buffer_size=100, **options) as logger:
        drive(logger, calls)
        assert not logger.needs_flush

    for table in ("agents", "agent_actions", "agent_states", "resource_states",
                  "simulation_steps", "health_incidents", "simulations"):
        want = table_rows(tmp_path / "agentfarm.db", table)
        got = table_rows(tmp_path / "agentmem.db", table)
        if table == "simulations":
            for r in (*want, *got):
                r.pop("simulation_db_path")
        assert len(got) == len(want), table
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"{table} row {n}"
    want = table_rows(tmp_path / "agentfarm.db", "agent_actions")
    assert len(want) == len(calls)
    assert any(r["details"] is None for r in want)
    assert any(r["module_id"] is not None and r["module_id"].isdigit() for r in want)
    assert any(r["action_target_id"] is not None and r["action_target_id"].isdigit()
               for r in want)
    assert max(Counter((r["agent_id"], r["step_number"], r["action_type"])
                       for r in want).values()) > 1

    # every action is queryable in Redis at its step
    for step in range(STEPS):
        expected = Counter((r["agent_id"], r["action_type"]) for r in want
                           if r["step_number"] == step)
        stored = mem.actions.at_step(SIM, step)
        assert Counter((a.agent_id, a.action_type) for a in stored) == expected, step


def test_the_original_generation_gets_its_own_rows(mem, tmp_path):
    calls = [{"step_number": s, "agent_id": a, "action_type": "move",
              "action_target_id": AGENTS[0], "reward": 0.5, "details": {"d": s},
              "resources_before": 5.0, "resources_after": 4.5}
             for s in range(3) for a in AGENTS[:4]]
    reference = ReferenceLogger(tmp_path / "agentfarm.db", SIM, "original")
    reference.log_agents_batch([{"simulation_id": SIM, "agent_id": a, "birth_time": 0,
                                 "agent_type": "X", "position": (0.0, 0.0),
                                 "initial_resources": 1.0, "starting_health": 1.0}
                                for a in AGENTS[:4]])
    for c in calls:
        reference.log_agent_action(**c)
    reference.flush_all_buffers()
    with open_archive(tmp_path / "agentmem.db", generation="original") as archive, \
            AgentFarmLogger(mem, archive, SIM) as logger:
        logger.log_agents_batch([{"agent_id": a, "birth_time": 0, "agent_type": "X",
                                  "position": (0.0, 0.0), "initial_resources": 1.0,
                                  "starting_health": 1.0} for a in AGENTS[:4]])
        for c in calls:
            logger.log_agent_action(**c)
    for table in ("agents", "agent_actions"):
        assert table_rows(tmp_path / "agentmem.db", table) == \
            table_rows(tmp_path / "agentfarm.db", table), table


AGENTFARM_PROTOCOL = {
    "log_agent_action": ["step_number", "agent_id", "action_type", "action_target_id",
                         "reward", "details", "module_type", "module_id", "action_taken",
                         "action_taken_mapped"],
    "log_health_incident": ["step_number", "agent_id", "health_before", "health_after",
                            "cause", "details"],
    "log_agent": ["agent_id", "birth_time", "agent_type", "position", "initial_resources",
                  "starting_health", "genome_id", "generation", "action_weights"],
    "log_agents_batch": ["agent_data_list"],
    "log_step": ["step_number", "agent_states", "resource_states", "metrics"],
    "log_resource": ["resource_id", "initial_amount", "position"],
    "flush_if_needed": [], "flush_action_buffer": [], "flush_health_buffer": [],
    "flush_all_buffers": [], "discard_pending_agents": ["agent_ids"],
}
"""AgentFarm's ``DataLogger`` public methods at db2f8f27 and their positional parameters."""


def test_every_datalogger_method_with_agentfarms_parameters():
    for name, params in AGENTFARM_PROTOCOL.items():
        sig = inspect.signature(getattr(AgentFarmLogger, name))
        positional = [p.name for p in sig.parameters.values()
                      if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        assert positional == params, name
    assert isinstance(AgentFarmLogger.needs_flush, property)


def test_needs_flush_discard_and_the_buffers(mem, tmp_path):
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        lg.log_agents_batch([{"agent_id": a, "birth_time": 0, "agent_type": "X",
                              "position": (0, 0), "initial_resources": 1,
                              "starting_health": 1} for a in AGENTS[:3]])
        assert not lg.needs_flush
        for a in AGENTS[:3]:
            lg.log_agent_action(1, a, "move")
            lg.log_health_incident(1, a, 5.0, 4.0, "starvation")
        assert lg.needs_flush
        assert lg.discard_pending_agents([AGENTS[1]]) == 2
        assert lg.discard_pending_agents([]) == 0
        lg.flush_health_buffer()
        assert len(table_rows(tmp_path / "a.db", "health_incidents")) == 2
        assert lg.needs_flush  # the actions
        lg.flush_action_buffer()
        assert not lg.needs_flush
        assert archive.count(SIM) == 2
        assert {a.agent_id for a in mem.actions.at_step(SIM, 1)} == {AGENTS[0], AGENTS[2]}
        with pytest.raises(ValueError, match="Missing required field 'birth_time'"):
            lg.log_agents_batch([{"agent_id": "agent_x"}])
        lg.log_resource("resource_9", 4.5, (1.0, 2.0))
        assert table_rows(tmp_path / "a.db", "resource_states") == [{
            "simulation_id": SIM, "step_number": 0, "resource_id": "resource_9",
            "amount": 4.5, "position_x": 1.0, "position_y": 2.0}]
        with pytest.raises(InvalidInput, match="no column"):
            lg.log_step(2, [], [], {"not_a_metric": 1})


def test_a_bare_agent_row_is_completed_by_log_agent(mem, tmp_path):
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        lg.log_agent_action(0, AGENTS[0], "move")  # archived first: a bare agents row
        lg.flush_all_buffers()
        lg.log_agent(AGENTS[0], 0, "SystemAgent", (1.0, 2.0), 10.0, 100.0,
                     action_weights={"move": 1})
        [row] = table_rows(tmp_path / "a.db", "agents")
        assert row["agent_type"] == "SystemAgent"
        assert row["position_y"] == 2.0
        assert json.loads(row["action_weights"]) == {"move": 1.0}
        with pytest.raises(BackendError, match="logged already"):
            lg.log_agent(AGENTS[0], 0, "SystemAgent", (1.0, 2.0), 10.0, 100.0)


def test_an_int_agent_id_is_one_agent_in_every_row(mem, tmp_path):
    """An int agent id is its text in the agents row too, as in its actions: the bare row
    its action brought ("7") is completed by log_agent(7) (it raised 'logged already')."""
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        lg.log_agent_action(0, 7, "move")
        lg.flush_all_buffers()
        lg.log_agent(7, 0, "SystemAgent", (1.0, 2.0), 10.0, 100.0)
        lg.log_agents_batch([{"agent_id": np.int64(8), "birth_time": 0, "agent_type": "X",
                              "position": (0, 0), "initial_resources": 1,
                              "starting_health": 1}])
        lg.log_agent_action(0, 8, "move")
    rows = table_rows(tmp_path / "a.db", "agents")
    assert [(r["agent_id"], r["agent_type"]) for r in rows] == [("7", "SystemAgent"),
                                                                ("8", "X")]


def test_a_bare_agent_row_of_another_simulation_is_not_taken_over(mem, tmp_path):
    """agents.agent_id is the table's key: an agent another simulation's action brought
    (a bare row of that simulation) is logged already, as AgentFarm's insert fails; it
    was completed with this simulation's values and moved to it."""
    with open_archive(tmp_path / "a.db") as archive, \
            AgentFarmLogger(mem, archive, "sim_a") as a, \
            AgentFarmLogger(mem, archive, "sim_b") as b:
        a.log_agent_action(0, AGENTS[0], "move")
        a.flush_all_buffers()
        with pytest.raises(BackendError, match="logged already"):
            b.log_agent(AGENTS[0], 0, "SystemAgent", (1.0, 2.0), 10.0, 100.0)
        with pytest.raises(BackendError, match="logged already"):
            b.log_agents_batch([{"agent_id": a_id, "birth_time": 0, "agent_type": "X",
                                 "position": (0, 0), "initial_resources": 1,
                                 "starting_health": 1} for a_id in AGENTS[:2]])
        [row] = table_rows(tmp_path / "a.db", "agents")
        assert (row["simulation_id"], row["agent_type"]) == ("sim_a", None)
        a.log_agent(AGENTS[0], 0, "SystemAgent", (1.0, 2.0), 10.0, 100.0)
        [row] = table_rows(tmp_path / "a.db", "agents")
        assert (row["simulation_id"], row["agent_type"]) == ("sim_a", "SystemAgent")


def test_two_simulations_log_into_one_archive(mem, tmp_path):
    """AgentFarm's ExperimentDatabase: several simulations, one file, one logger each."""
    with open_archive(tmp_path / "a.db") as archive:
        with AgentFarmLogger(mem, archive, "sim_a") as a, \
                AgentFarmLogger(mem, archive, "sim_b") as b:
            for step in range(5):
                a.log_agent_action(step, "agent_a", "move")
                b.log_agent_action(step, "agent_b", "gather", action_target_id=step)
                a.flush_if_needed()
                b.flush_if_needed()
            assert a.writer.failover is not None
            assert b.writer.failover is not None
            assert a.writer.failover.journal.path != b.writer.failover.journal.path
        assert archive.count("sim_a") == archive.count("sim_b") == 5


def test_after_flush_if_needed_redis_has_the_step(mem, tmp_path):
    """Buffered (the default): a step's actions are in Redis once flush_if_needed returns;
    background: once flush_action_buffer returns."""
    with open_archive(tmp_path / "a.db") as archive:
        with AgentFarmLogger(mem, archive, SIM) as lg:
            for step in range(20):
                lg.log_agent_action(step, AGENTS[0], "move")
                lg.flush_if_needed()
                assert [a.step_number for a in mem.actions.recent(AGENTS[0], 1)] == [step]
        with AgentFarmLogger(mem, archive, "sim_bg", background=True) as lg:
            for step in range(20):
                lg.log_agent_action(step, AGENTS[1], "move")
                lg.flush_action_buffer()
                assert [a.step_number for a in mem.actions.recent(AGENTS[1], 1)] == [step]


def test_negative_step_raises_and_writes_nothing(mem, tmp_path):
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        with pytest.raises(ValueError, match="non-negative"):
            lg.log_agent_action(-1, AGENTS[0], "move", details={"x": 1})
        lg.flush_all_buffers()
        assert archive.count() == 0
    assert mem.actions.recent(AGENTS[0], 10) == []


def test_details_are_copied_and_numpy_converted(mem, tmp_path):
    details = {"new_position": (1, 2), "q": np.float32(0.5), "n": np.int64(3)}
    before = copy.deepcopy(details)
    with pytest.raises(TypeError):  # AgentFarm's json.dumps refuses numpy values
        json.dumps(details)
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        lg.log_agent_action(np.int64(3), AGENTS[0], "move", details=details,
                            action_taken=np.int64(4), action_taken_mapped="move",
                            reward=np.float64(0.25))
        assert details == before  # the caller's dict is not changed
        lg.log_agent_action(3, AGENTS[1], "pass")  # no details: NULL
        lg.flush_all_buffers()
        stored = {r["agent_id"]: r["details"] for r in table_rows(tmp_path / "a.db",
                                                                  "agent_actions")}
    assert json.loads(stored[AGENTS[0]]) == {"new_position": [1, 2], "q": 0.5, "n": 3,
                                             "action_taken": 4, "action_taken_mapped": "move"}
    assert stored[AGENTS[1]] is None


def test_bad_input_raises_at_the_call_and_keeps_nothing(mem, tmp_path):
    import enum

    class Kind(enum.Enum):
        MOVE = "move"

    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        with pytest.raises(InvalidInput):  # str(Kind.MOVE) == "Kind.MOVE": '.' is refused
            lg.log_agent_action(1, AGENTS[0], Kind.MOVE)
        with pytest.raises(InvalidInput):
            lg.log_agent_action(1, "agent with spaces", "move")
        assert not lg.needs_flush
        lg.flush_all_buffers()
        assert archive.count() == 0
    assert mem.actions.recent(AGENTS[0], 10) == []
    with pytest.raises(ConfigError, match="simulation_id"):
        AgentFarmLogger(mem, archive, "")


def test_the_original_generations_own_methods(mem, tmp_path):
    with open_archive(tmp_path / "a.db", generation="original") as archive, \
            AgentFarmLogger(mem, archive, SIM) as lg:
        lg.log_agent(AGENTS[0], 0, "X", (0.0, 1.0), 1.0, 2.0, starvation_threshold=50)
        lg.log_agent(AGENTS[1], 0, "X", (0.0, 1.0), 1.0, 2.0)
        lg.log_learning_experience(3, AGENTS[0], "dqn", 7, 2, "move", 0.5)
        lg.log_reproduction_event(3, AGENTS[0], AGENTS[1], True, 10.0, 5.0, 5.0, None, 0, 1,
                                  (1.0, 2.0))
        assert lg.needs_flush
        lg.flush_all_buffers()
        assert not lg.needs_flush
        lg.log_step(3, [(AGENTS[0], 1.0, 2.0, 5.0, 90.0, 100.0, 0, 1, 1.5, 3)], [], {})
    assert [r["starvation_threshold"] for r in table_rows(tmp_path / "a.db", "agents")] == [
        50, None]
    assert table_rows(tmp_path / "a.db", "learning_experiences") == [{
        "experience_id": 1, "simulation_id": SIM, "step_number": 3, "agent_id": AGENTS[0],
        "module_type": "dqn", "module_id": "7", "action_taken": 2,
        "action_taken_mapped": "move", "reward": 0.5}]
    [event] = table_rows(tmp_path / "a.db", "reproduction_events")
    assert (event["parent_id"], event["offspring_id"], event["success"],
            event["parent_position_y"]) == (AGENTS[0], AGENTS[1], 1, 2.0)
    # the original generation's agent_states id has no simulation prefix
    assert [r["id"] for r in table_rows(tmp_path / "a.db", "agent_states")] == [
        f"{AGENTS[0]}-3"]
    with open_archive(tmp_path / "b.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg, \
            pytest.raises(ConfigError, match="learning_experiences"):
        lg.log_learning_experience(3, AGENTS[0], "dqn", 7, 2, "move", 0.5)


def test_agentfarms_buffer_names_and_its_clock(mem, tmp_path):
    """AgentFarm's subclass (ExperimentDataLogger) and tests read these names."""
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        assert (lg._action_buffer, lg._health_incident_buffer, lg._resource_buffer,
                lg._step_buffer, lg._buffer_size) == ([], [], [], [], 1000)
        lg.log_agent_action(0, AGENTS[0], "move")
        assert len(lg._action_buffer) == 1
        lg.flush_if_needed()  # to Redis; the interval has not passed: not archived
        assert lg._action_buffer == []
        assert lg.needs_flush
        assert archive.count() == 0
        lg._last_commit_time -= 31  # AgentFarm's clock: 30 s since the last commit
        lg.flush_if_needed()
        assert not lg.needs_flush
        assert archive.count() == 1


def test_two_loggers_ride_out_a_redis_outage(tmp_path):
    """AgentFarm's ExperimentDatabase: two simulations' loggers on one archive file while
    their Redis is killed and restarted. Neither refuses a call (each journals to its own
    file); once Redis is back, every action is in Redis and the archive."""
    from agentmem.servers.local import LocalServer

    srv = LocalServer("redis", directory=tmp_path / "redis", appendonly=True,
                      extra_args=("--appendfsync", "always")).start()
    try:
        mem = agentmem.connect(srv.url, socket_connect_timeout=1, socket_timeout=1)
        with open_archive(tmp_path / "a.db") as archive:
            loggers = [AgentFarmLogger(mem, archive, sim, retry_interval=0.05)
                       for sim in ("sim_a", "sim_b")]
            for step in range(30):
                if step == 10:
                    srv.stop()  # a real outage: the process is gone
                if step == 20:
                    srv.start()
                    time.sleep(0.1)
                for lg, agent in zip(loggers, ("agent_a", "agent_b"), strict=True):
                    lg.log_agent_action(step, agent, "move", reward=float(step))
                    lg.flush_if_needed()
            for lg in loggers:
                lg.close()
            assert archive.count("sim_a") == archive.count("sim_b") == 30
        for sim in ("sim_a", "sim_b"):
            assert len(mem.actions.simulation_actions(sim)) == 30
        mem.close()
    finally:
        srv.close()


@pytest.mark.parametrize("background", [False, True])
def test_discard_reaches_actions_in_redis_not_archived_yet(mem, tmp_path, background):
    """AgentFarm drops every row it has not written: so does the drop-in, also the
    actions a flush_if_needed stored in Redis (deleted there) and not archived yet."""
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(
            mem, archive, SIM, background=background) as lg:
        for step in range(3):
            for agent in AGENTS[:2]:
                lg.log_agent_action(step, agent, "move")
            lg.log_health_incident(step, AGENTS[1], 5.0, 4.0, "starvation")
            if step < 2:
                lg.flush_if_needed()
        lg.flush_action_buffer()  # step 0-2 in Redis; AGENTS[1] discarded next
        assert archive.count() == 6
        lg.log_agent_action(3, AGENTS[1], "move")
        lg.flush_if_needed()
        assert lg.discard_pending_agents([AGENTS[1]]) == 1 + 3  # in Redis; health rows
        lg.flush_all_buffers()
        assert archive.count() == 6
        assert [a.step_number for a in mem.actions.timeline(AGENTS[1])] == [0, 1, 2]
        assert table_rows(tmp_path / "a.db", "health_incidents") == []


def test_discard_takes_an_int_agent_id_as_log_agent_action_does(mem, tmp_path):
    """An int agent id is logged as its text ("7"), its health incidents as given: the
    discard of 7, "7" or a numpy 7 drops both kinds of rows (it dropped only the health
    incidents of 7, and the actions were archived)."""
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        for step in range(2):
            for agent in (7, 8, 9):
                lg.log_agent_action(step, agent, "move")
                lg.log_health_incident(step, agent, 5.0, 4.0, "starvation")
            if step == 0:
                lg.flush_if_needed()  # step 0 in Redis, not archived yet
        assert lg.discard_pending_agents([7]) == 4
        assert lg.discard_pending_agents(["8"]) == 4
        assert lg.discard_pending_agents([np.int64(9)]) == 4
        lg.flush_all_buffers()
        assert archive.count() == 0
        assert table_rows(tmp_path / "a.db", "health_incidents") == []
    assert mem.actions.recent("7", 10) == []


@pytest.mark.parametrize("background", [False, True])
def test_close_writes_health_incidents_of_an_agent_known_by_its_actions(mem, tmp_path,
                                                                         background):
    """The agents row of an agent never logged is the bare one its first archived action
    brings: close() archives the actions before the health incidents that need it, as
    flush_all_buffers() does (it wrote the incidents first: FOREIGN KEY constraint
    failed, the writer left open and the incidents lost at exit)."""
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, background=background)
        lg.log_agent_action(0, AGENTS[0], "move")
        lg.log_health_incident(0, AGENTS[0], 5.0, 4.0, "starvation")
        lg.close()
        assert archive.count(SIM) == 1
        assert [r["agent_id"] for r in table_rows(tmp_path / "a.db",
                                                  "health_incidents")] == [AGENTS[0]]
        assert not lg.needs_flush


@pytest.mark.parametrize("background", [False, True])
def test_a_full_health_buffer_of_an_agent_known_by_its_actions(mem, tmp_path, background):
    """A health buffer that fills up (or flush_health_buffer) while the agent's only
    agents row would come with its pending actions archives those first; it raised
    FOREIGN KEY constraint failed from log_health_incident."""
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, buffer_size=3, background=background)
        lg.log_agent_action(0, AGENTS[0], "move")
        lg.flush_if_needed()  # in Redis, not archived (commit_interval not reached)
        for step in range(3):  # the third fills the buffer: written now
            lg.log_health_incident(step, AGENTS[0], 5.0, 4.0, "starvation")
        assert len(table_rows(tmp_path / "a.db", "health_incidents")) == 3
        assert archive.count(SIM) == 1
        lg.close()


def test_a_failed_flush_keeps_the_actions_for_the_next(mem, tmp_path):
    """A flush that stored nothing (here: an error the background thread kept) leaves the
    step's actions buffered; the next flush stores them: none is lost."""
    from agentmem.errors import BackendError

    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, background=True)
        lg.log_agent_action(0, AGENTS[0], "move")
        lg.flush_if_needed()
        lg.writer._keep(BackendError("transient"), "a stand-in for a thread's failure")
        lg.log_agent_action(1, AGENTS[0], "move")
        lg.log_agent_action(2, AGENTS[0], "move")
        with pytest.raises(BackendError, match="transient"):
            lg.flush_if_needed()
        assert len(lg._action_buffer) == 2
        lg.flush_if_needed()
        lg.close()
        assert archive.count(SIM) == 3
    assert [a.step_number for a in mem.actions.timeline(AGENTS[0])] == [0, 1, 2]


def test_an_original_database_migrated_by_revision_0001_stays_original(tmp_path):
    """Revision 0001 gave an original-generation agent_actions module_type/module_id:
    its own tables still say which generation it is."""
    with open_archive(tmp_path / "a.db", generation="original"):
        pass
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("ALTER TABLE agent_actions ADD COLUMN module_type VARCHAR(50)")
    conn.execute("ALTER TABLE agent_actions ADD COLUMN module_id VARCHAR(64)")
    conn.commit()
    conn.close()
    with open_archive(tmp_path / "a.db") as archive:
        assert archive.generation == "original"


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_a_logger_never_closed_flushes_at_exit_and_on_sigterm(server, r, tmp_path, how):
    """Buffered actions and health rows of a logger the simulation never closed reach
    Redis and the archive when the interpreter exits, or when the process gets SIGTERM."""
    import subprocess
    import sys

    db = tmp_path / "a.db"
    end = "os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)" if how == "sigterm" else ""
    script = f"""
import os, signal, time
import agentmem
from agentmem.integrations.agentfarm import AgentFarmLogger
mem = agentmem.connect({server.url!r})
lg = AgentFarmLogger(mem, agentmem.open_archive({str(db)!r}), "sim_exit")
lg.log_agents_batch([{{"agent_id": "a1", "birth_time": 0, "agent_type": "X",
                      "position": (0, 0), "initial_resources": 1, "starting_health": 1}}])
for step in range(5):
    lg.log_agent_action(step, "a1", "move")
lg.log_health_incident(4, "a1", 5.0, 4.0, "starvation")
{end}
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == (143 if how == "sigterm" else 0), proc.stderr
    with open_archive(db) as archive:
        assert archive.count("sim_exit") == 5
    assert len(table_rows(db, "health_incidents")) == 1
    mem = agentmem.connect(server.url)
    assert len(mem.actions.timeline("a1")) == 5
    mem.close()
