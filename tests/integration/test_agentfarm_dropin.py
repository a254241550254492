"""The AgentFarm drop-in: ``agent_actions`` rows equal AgentFarm's, and Redis has every action.

AgentFarm cannot be installed here, so ``ReferenceLogger`` below does what the
reference (``/work/shared/reference/agentfarm.md``) says AgentFarm's
``DataLogger.log_agent_action`` and its bulk insert do, into a second SQLite
file with the same ``agent_actions`` columns.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, event, select

from agentmem.backends.sql import agent_actions, agents, metadata, open_archive, simulations
from agentmem.errors import ConfigError, InvalidInput
from agentmem.integrations.agentfarm import AgentFarmLogger

SIM = "sim_3f9a2c1b"
AGENTS = [f"agent_{n:08x}" for n in range(0x1a2b3c00, 0x1a2b3c00 + 20)]
STEPS = 30
TYPES = ["defend", "attack", "gather", "share", "move", "reproduce", "pass", "communicate"]
COLUMNS = [c.name for c in agent_actions.columns if c.name != "action_id"]


class ReferenceLogger:
    """AgentFarm's ``log_agent_action`` + bulk insert, as the reference describes them."""

    def __init__(self, path: Any, simulation_id: str, buffer_size: int = 1000) -> None:
        self.engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(self.engine, "connect")
        def _fk(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        metadata.create_all(self.engine)
        self.simulation_id = simulation_id
        self.buffer_size = buffer_size
        self.buffer: list[dict[str, Any]] = []
        with self.engine.begin() as conn:  # AgentFarm writes its parent rows first
            conn.execute(simulations.insert(), [{
                "simulation_id": simulation_id, "status": "pending", "parameters": {},
                "simulation_db_path": str(path)}])
            conn.execute(agents.insert(), [
                {"agent_id": a, "simulation_id": simulation_id} for a in AGENTS])

    def log_agent_action(self, step_number, agent_id, action_type, action_target_id=None,
                         reward=None, details=None, module_type=None, module_id=None,
                         action_taken=None, action_taken_mapped=None) -> None:
        if step_number < 0:
            raise ValueError("step_number must be non-negative")
        if not isinstance(action_type, str):
            action_type = str(action_type)
        details_copy = copy.deepcopy(details) if details else {}
        if action_taken is not None:
            details_copy["action_taken"] = action_taken
        if action_taken_mapped is not None:
            details_copy["action_taken_mapped"] = action_taken_mapped
        self.buffer.append({
            "simulation_id": self.simulation_id,
            "step_number": step_number,
            "agent_id": agent_id,
            "action_type": action_type,
            "action_target_id": action_target_id,
            "reward": reward,
            "details": json.dumps(details_copy) if details_copy else None,
            "module_type": module_type,
            "module_id": module_id,
        })
        if len(self.buffer) >= self.buffer_size:
            self.flush_all_buffers()

    def flush_if_needed(self) -> None:
        pass  # the 30 s interval never passes in the test

    def flush_all_buffers(self) -> None:
        if self.buffer:
            with self.engine.begin() as conn:
                conn.execute(agent_actions.insert(), self.buffer)
            self.buffer = []


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
                                   "distance": 1.0}
            elif kind == "gather":
                call["action_target_id"] = f"resource_{rng.randrange(10)}"
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
                    "reward": 0.25, "module_type": "dqn", "module_id": f"dqn_{agent[-4:]}",
                    "action_taken": rng.randrange(8), "action_taken_mapped": kind,
                    "details": {"epsilon": 0.1, "q": [0.5, 1.5]},
                })
    return calls


def rows(engine: Any) -> list[dict[str, Any]]:
    cols = [agent_actions.c[name] for name in COLUMNS]
    with engine.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(
            select(*cols).order_by(agent_actions.c.action_id))]
    for r in out:  # the same JSON value with the same key order (separators may differ)
        if r["details"] is not None:
            r["details"] = json.dumps(json.loads(r["details"]))
    return out


def drive(logger: Any, calls: list[dict[str, Any]]) -> None:
    step = 0
    for call in calls:
        if call["step_number"] != step:
            logger.flush_if_needed()  # once per step, as AgentFarm's loop does
            step = call["step_number"]
        logger.log_agent_action(**call)
    logger.flush_all_buffers()


@pytest.mark.parametrize("background", [False, True])
def test_rows_equal_agentfarms_and_redis_has_every_action(mem, tmp_path, background):
    calls = simulation_calls()
    assert len(calls) > STEPS * len(AGENTS)  # module rows were added
    reference = ReferenceLogger(tmp_path / "agentfarm.db", SIM, buffer_size=100)
    drive(reference, calls)
    with open_archive(tmp_path / "agentmem.db") as archive, AgentFarmLogger(
            mem, archive, SIM, buffer_size=100, background=background) as logger:
        drive(logger, calls)
        assert logger.writer.pending == 0
        got = rows(archive.engine)
    want = rows(reference.engine)
    reference.engine.dispose()

    assert len(got) == len(want) == len(calls)
    for n, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"row {n}"
    assert any(r["details"] is None for r in want)
    assert any(r["module_type"] is not None for r in want)
    assert any(r["action_type"].isdigit() for r in want)
    triples = Counter((r["agent_id"], r["step_number"], r["action_type"]) for r in want)
    assert max(triples.values()) > 1  # duplicate (agent, step, type) rows were compared

    # every action is queryable in Redis: at its step, and by its agent and type
    def key(agent, kind, target, reward, details, module_type):
        return (agent, kind, target, reward, json.dumps(details), module_type)

    by_step: dict[int, Counter] = {}
    for r in want:
        details = None if r["details"] is None else json.loads(r["details"])
        by_step.setdefault(r["step_number"], Counter())[key(
            r["agent_id"], r["action_type"], r["action_target_id"], r["reward"], details,
            r["module_type"])] += 1
    for step, expected in by_step.items():
        stored = mem.actions.at_step(SIM, step)
        assert Counter(key(a.agent_id, a.action_type, a.action_target_id, a.reward,
                           a.details, a.module_type) for a in stored) == expected, step
    per_type = Counter((r["agent_id"], r["action_type"]) for r in want)
    for (agent, kind), n in per_type.items():
        assert len(mem.actions.by_type(agent, kind)) == n, (agent, kind)


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
        lg.log_agent_action(3, AGENTS[0], "move", details=details, action_taken=np.int64(4),
                            action_taken_mapped="move")
        assert details == before  # the caller's dict is not changed
        lg.log_agent_action(3, AGENTS[1], "pass")  # no details: NULL
        lg.flush_all_buffers()
        stored = rows(archive.engine)
    want = {"new_position": [1, 2], "q": 0.5, "n": 3, "action_taken": 4,
            "action_taken_mapped": "move"}
    assert json.loads(stored[0]["details"]) == want
    assert stored[1]["details"] is None
    (a,) = mem.actions.by_type(AGENTS[0], "move")
    assert a.details == want


class Recorder:
    """A stand-in for AgentFarm's DataLogger: records what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def _record(self, name: str, *args: Any, **kwargs: Any) -> str:
        self.calls.append((name, args, kwargs))
        return name

    def log_step(self, *args: Any, **kwargs: Any) -> str:
        return self._record("log_step", *args, **kwargs)

    def log_agent(self, *args: Any, **kwargs: Any) -> str:
        return self._record("log_agent", *args, **kwargs)

    def log_health_incident(self, *args: Any, **kwargs: Any) -> str:
        return self._record("log_health_incident", *args, **kwargs)

    def flush_if_needed(self) -> None:
        self._record("flush_if_needed")

    def flush_all_buffers(self) -> None:
        self._record("flush_all_buffers")

    def log_agent_action(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("actions go to agentmem, not to the wrapped logger")


def test_forwards_the_other_methods_to_the_wrapped_logger(mem, tmp_path):
    rec = Recorder()
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(
            mem, archive, SIM, wrapped=rec) as lg:
        assert lg.log_step(1, agent_states=[], resource_states=[], metrics={}) == "log_step"
        assert lg.log_agent(AGENTS[0], 0, "system", (1.0, 2.0), 5.0, 10.0) == "log_agent"
        assert lg.log_health_incident(1, AGENTS[0], 10.0, 8.0, "attack",
                                      details={"by": AGENTS[1]}) == "log_health_incident"
        lg.log_agent_action(1, AGENTS[0], "move")
        lg.flush_if_needed()
        lg.flush_all_buffers()
        assert archive.count() == 1
    assert rec.calls[:5] == [
        ("log_step", (1,), {"agent_states": [], "resource_states": [], "metrics": {}}),
        ("log_agent", (AGENTS[0], 0, "system", (1.0, 2.0), 5.0, 10.0), {}),
        ("log_health_incident", (1, AGENTS[0], 10.0, 8.0, "attack"),
         {"details": {"by": AGENTS[1]}}),
        ("flush_if_needed", (), {}),
        ("flush_all_buffers", (), {}),
    ]
    assert rec.calls[5:] == [("flush_all_buffers", (), {})]  # by close()


def test_without_a_wrapped_logger_the_other_methods_raise(mem, tmp_path):
    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        for call in (lambda: lg.log_step(1, [], [], {}),
                     lambda: lg.log_agent(AGENTS[0], 0, "system", (0, 0), 1.0, 1.0),
                     lambda: lg.log_health_incident(1, AGENTS[0], 1.0, 0.5, "starve")):
            with pytest.raises(ConfigError, match="wrapped="):
                call()
        lg.flush_if_needed()
        lg.flush_all_buffers()


def test_an_enum_type_agentfarm_would_store_is_refused(mem, tmp_path):
    import enum

    class Kind(enum.Enum):
        MOVE = "move"

    with open_archive(tmp_path / "a.db") as archive, AgentFarmLogger(mem, archive, SIM) as lg:
        with pytest.raises(InvalidInput):  # str(Kind.MOVE) == "Kind.MOVE": '.' is refused
            lg.log_agent_action(1, AGENTS[0], Kind.MOVE)
        lg.flush_all_buffers()
        assert archive.count() == 0
    assert mem.actions.recent(AGENTS[0], 10) == []
