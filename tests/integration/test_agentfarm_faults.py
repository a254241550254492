"""The AgentFarm drop-in under faults: several processes on one archive, Redis dying under
``discard_pending_agents``, rows of agents without an ``agents`` row, calls after close().

Real servers and processes throughout: the session's Redis/Valkey, a private Redis that
is killed, SQLite files, and a PostgreSQL schema of the test's own where the ``db``
fixture says so (skipped without a server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

import agentmem
from agentmem.backends.sql import Archive, open_archive
from agentmem.errors import ConfigError
from agentmem.integrations.agentfarm import AgentFarmLogger
from agentmem.servers.local import LocalServer, find_binary

SIM = "sim_faults"


def rows(archive: Archive, table: str) -> list[dict[str, Any]]:
    """A table's rows in insertion order (its primary key, or SQLite's rowid)."""
    t = archive.tables.tables[table]
    key = next(iter(t.primary_key.columns))
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t).order_by(key))]


# -- 1. several processes, one archive ------------------------------------------------------

CHILD = r"""
import os, sys, time
import agentmem
from agentmem.integrations.agentfarm import AgentFarmLogger
url, archive_url, sim, gate, n = sys.argv[1:6]
lg = AgentFarmLogger(agentmem.connect(url), agentmem.open_archive(archive_url), sim)
open(gate + "." + sim, "w").close()        # ready
while not os.path.exists(gate):            # all start together
    time.sleep(0.001)
errors = []
for i in range(int(n)):
    try:
        lg.log_agent(f"{sim}_a{i}", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
        lg.log_agent_action(i, f"{sim}_a{i}", "move")
        lg.log_health_incident(i, f"{sim}_a{i}", 2.0, 1.0, "starvation")
        lg.log_step(i, [(f"{sim}_a{i}", 0.0, 0.0, 1.0, 1.0, 1.0, 0, False, 0.0, i)],
                    [], {"total_agents": 1})
        lg.flush_if_needed()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
lg.close()
print(len(errors), errors[:1])
"""


def test_several_processes_log_into_one_archive_without_lock_errors(
        server: Any, r: Any, db: Db, tmp_path: Path) -> None:  # noqa: F811
    """Three processes, each its own simulation (AgentFarm's ExperimentDatabase), start
    logging into one archive at once: no call fails (on SQLite the simulations and agents
    rows were read then written in a deferred transaction, whose lock upgrade SQLite
    refused at once: "database is locked"), and every row is there."""
    n, procs = 40, 3
    open_archive(db.url).close()  # the schema first
    gate = str(tmp_path / "go")
    sims = [f"sim_p{i}" for i in range(procs)]
    children = [subprocess.Popen([sys.executable, "-c", CHILD, server.url, db.url, sim, gate,
                                  str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for sim in sims]
    try:
        while not all(Path(f"{gate}.{sim}").exists() for sim in sims):
            if any(c.poll() is not None for c in children):
                break  # one died before it was ready: its output says why
        Path(gate).touch()
        outs = [c.communicate(timeout=300) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    for c, (out, err) in zip(children, outs, strict=True):
        assert c.returncode == 0, err[-2000:]
        assert out.strip() == "0 []", out
    with open_archive(db.url) as archive:
        assert sorted(s["simulation_id"] for s in rows(archive, "simulations")) == sims
        agents = rows(archive, "agents")
        assert len(agents) == n * procs
        assert all(a["agent_type"] == "SystemAgent" for a in agents)  # none bare
        for sim in sims:
            assert archive.count(sim) == n
        assert len(rows(archive, "health_incidents")) == n * procs
        assert len(rows(archive, "simulation_steps")) == n * procs


# -- 2. discard_pending_agents when Redis has just died -------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[LocalServer]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server binary")
    srv = LocalServer("redis", directory=tmp_path / "redis").start()
    yield srv
    srv.close()


def test_discard_right_after_redis_died_returns_the_count_and_keeps_the_stored(
        private_redis: LocalServer, tmp_path: Path) -> None:
    """Redis killed, the writer not aware yet: discard_pending_agents drops the logger's
    buffered action of the agent and returns 1 instead of raising Unavailable (which lost
    that count); the writer fails over; the actions stored in Redis could not be deleted
    there, so they stay and are archived with the others, as documented."""
    mem = agentmem.connect(private_redis.url, socket_connect_timeout=0.5, socket_timeout=2)
    archive = open_archive(tmp_path / "a.db")
    lg = AgentFarmLogger(mem, archive, SIM, retry_interval=0.05)
    for step in range(3):
        for agent in ("a0", "a1"):
            lg.log_agent_action(step, agent, "move")
        lg.flush_if_needed()  # in Redis, not archived (commit_interval not reached)
    lg.log_agent_action(3, "a1", "move")  # buffered in the logger
    assert lg.writer.pending == 6
    private_redis.kill()
    assert lg.discard_pending_agents(["a1"]) == 1
    assert lg.writer.redis_down
    assert lg.writer.pending == 6  # the stored ones stay
    private_redis.start()  # empty: no append-only file
    lg.log_agent_action(4, "a0", "move")
    lg.close()
    steps = sorted((a.agent_id, a.step_number) for a in archive.read(SIM))
    assert steps == [("a0", 0), ("a0", 1), ("a0", 2), ("a0", 4),
                     ("a1", 0), ("a1", 1), ("a1", 2)]
    archive.close()
    mem.close()


@pytest.mark.parametrize("hung", ["store", "archive"])
def test_rows_do_not_wait_for_a_hung_redis_in_background_mode(
        private_redis: LocalServer, tmp_path: Path, hung: str) -> None:
    """background=True: the thread's Redis call hangs (the server SIGSTOPped, a 30 s
    socket timeout), in its store of a step ("store") or in the Redis part of its
    archive write, the outbox's listing ("archive"). ``log_agent`` (a transaction run
    with no SQL statement of the writer under way) returns while Redis is still
    stopped, instead of waiting for the thread's Redis call; once the server runs
    again, both stores hold everything."""
    mem = agentmem.connect(private_redis.url, socket_timeout=30)
    archive = open_archive(tmp_path / "a.db")
    lg = AgentFarmLogger(mem, archive, SIM, durability="buffered", background=True,
                         commit_interval=0.3 if hung == "archive" else 60)
    lg.log_agent("a0", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
    assert private_redis.process is not None
    pid = private_redis.process.pid
    if hung == "archive":
        lg.log_agent_action(0, "a0", "move")
        lg.flush_if_needed()  # the thread stores it; the archive write is not due yet
        time.sleep(0.1)
    os.kill(pid, signal.SIGSTOP)
    try:
        if hung == "store":
            lg.log_agent_action(0, "a0", "move")
            lg.flush_if_needed()  # handed to the thread, whose Redis call now hangs
        time.sleep(0.8)  # ("archive": the interval passes; the thread's write hangs)
        done = threading.Event()
        caller = threading.Thread(target=lambda: (
            lg.log_agent("a1", 0, "SystemAgent", (1.0, 1.0), 1.0, 1.0), done.set()))
        caller.start()
        returned = done.wait(10)
        stopped = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T"
    finally:
        os.kill(pid, signal.SIGCONT)
    caller.join()
    assert returned, "log_agent waited for the hung Redis"
    assert stopped  # it returned while Redis was still stopped
    lg.close()
    assert sorted(r["agent_id"] for r in rows(archive, "agents")) == ["a0", "a1"]
    assert [a.agent_id for a in archive.read(SIM)] == ["a0"]
    assert [a.step_number for a in mem.actions.timeline("a0")] == [0]
    archive.close()
    mem.close()


def test_strict_discard_right_after_redis_died_raises(private_redis: LocalServer,
                                                      tmp_path: Path) -> None:
    """With strict=True connection errors are raised (docs/failover.md): discard too."""
    mem = agentmem.connect(private_redis.url, socket_connect_timeout=0.5, socket_timeout=2)
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, strict=True)
        lg.log_agent_action(0, "a1", "move")
        lg.flush_if_needed()
        private_redis.kill()
        with pytest.raises(agentmem.Unavailable):
            lg.discard_pending_agents(["a1"])
        private_redis.start()
        lg.close()  # Redis is back: the stored action is archived
        assert archive.count(SIM) == 1
    mem.close()


# -- 3. rows of an agent without an agents row ---------------------------------------------

MODES = [pytest.param({}, id="buffered"), pytest.param({"background": True}, id="background"),
         pytest.param({"durability": "redis", "archive_thread": True}, id="archive_thread")]


@pytest.mark.parametrize("mode", MODES)
def test_a_health_incident_of_an_unknown_agent_gets_a_bare_agents_row_and_blocks_nothing(
        mem: Any, db: Db, mode: dict[str, Any]) -> None:  # noqa: F811
    """An incident whose agent was never logged and has no action (AgentFarm's flush
    fails on the foreign key and loses the batch) gets a bare agents row, as an action's
    agent does: it and the incidents after it are written, and close() succeeds in every
    mode (background: it raised "the background writer is not running")."""
    with open_archive(db.url) as archive:
        lg = AgentFarmLogger(mem, archive, SIM, buffer_size=2, **mode)
        lg.log_agent("a1", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
        lg.log_agent_action(0, "a1", "move")
        lg.log_health_incident(0, "ghost", 10.0, 5.0, "starvation")
        lg.log_health_incident(0, "a1", 10.0, 9.0, "attack")  # the buffer is full: written
        lg.log_health_incident(1, "a1", 9.0, 8.0, "attack")
        lg.close()
        incidents = [(h["agent_id"], h["step_number"]) for h in rows(archive, "health_incidents")]
        assert incidents == [("ghost", 0), ("a1", 0), ("a1", 1)]
        agents = {a["agent_id"]: a for a in rows(archive, "agents")}
        assert agents["ghost"]["simulation_id"] == SIM
        assert agents["ghost"]["agent_type"] is None  # bare: only its ids
        assert agents["a1"]["agent_type"] == "SystemAgent"
        assert archive.count(SIM) == 1
        # a later log_agent completes the bare row
        lg2 = AgentFarmLogger(mem, archive, SIM)
        lg2.log_agent("ghost", 0, "SystemAgent", (1.0, 2.0), 3.0, 4.0)
        lg2.close()
        ghost = next(a for a in rows(archive, "agents") if a["agent_id"] == "ghost")
        assert (ghost["agent_type"], ghost["position_x"], ghost["starting_health"]) == \
            ("SystemAgent", 1.0, 4.0)


def test_reproduction_and_learning_rows_of_unknown_agents_get_bare_agents_rows(
        mem: Any, tmp_path: Path) -> None:
    """The original generation's reproduction_events (parent_id, offspring_id) and
    learning_experiences (agent_id) reference agents too: an unknown one gets a bare row,
    so the flush writes them."""
    with open_archive(tmp_path / "a.db", generation="original") as archive:
        lg = AgentFarmLogger(mem, archive, SIM)
        lg.log_agent("parent", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
        lg.log_reproduction_event(3, "parent", "child", True, 10.0, 5.0, 5.0, None, 0, 1,
                                  (1.0, 2.0))
        lg.log_learning_experience(3, "learner", "dqn", 1, 2, "move", 0.5)
        lg.flush_reproduction_buffer()
        lg.flush_learning_buffer()
        assert [(e["parent_id"], e["offspring_id"])
                for e in rows(archive, "reproduction_events")] == [("parent", "child")]
        assert [e["agent_id"] for e in rows(archive, "learning_experiences")] == ["learner"]
        agents = {a["agent_id"]: a["agent_type"] for a in rows(archive, "agents")}
        assert agents == {"parent": "SystemAgent", "child": None, "learner": None}
        lg.close()


# -- 4. logging after close ------------------------------------------------------------------

CALLS: dict[str, Any] = {
    "log_agent_action": lambda lg: lg.log_agent_action(1, "a1", "move"),
    "log_health_incident": lambda lg: lg.log_health_incident(1, "a1", 2.0, 1.0, "x"),
    "log_agent": lambda lg: lg.log_agent("a2", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0),
    "log_agents_batch": lambda lg: lg.log_agents_batch([{
        "agent_id": "a2", "birth_time": 0, "agent_type": "X", "position": (0, 0),
        "initial_resources": 1, "starting_health": 1}]),
    "log_step": lambda lg: lg.log_step(1, [], [], {"total_agents": 1}),
    "log_resource": lambda lg: lg.log_resource("r1", 5.0, (1.0, 1.0)),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_logging_after_close_raises_config_error(mem: Any, tmp_path: Path,
                                                 mode: dict[str, Any], call: str) -> None:
    """A log_* call after close() raises ConfigError and writes nothing (buffered mode
    accepted it, and nothing ever wrote it); flushing, discarding and closing again do
    nothing."""
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, **mode)
        lg.log_agent("a1", 0, "SystemAgent", (0.0, 0.0), 1.0, 1.0)
        lg.log_agent_action(0, "a1", "move")
        lg.close()
        before = {t: len(rows(archive, t)) for t in archive.tables.tables
                  if t in ("agents", "agent_actions", "health_incidents", "resource_states",
                           "simulation_steps")}
        with pytest.raises(ConfigError, match="closed"):
            CALLS[call](lg)
        assert not lg.needs_flush
        lg.flush_all_buffers()
        lg.flush_if_needed()
        assert lg.discard_pending_agents(["a1"]) == 0
        lg.close()
        assert {t: len(rows(archive, t)) for t in before} == before
        assert archive.count(SIM) == 1


def test_original_generation_logging_after_close_raises_config_error(
        mem: Any, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db", generation="original") as archive:
        lg = AgentFarmLogger(mem, archive, SIM)
        lg.close()
        with pytest.raises(ConfigError, match="closed"):
            lg.log_learning_experience(1, "a1", "dqn", 1, 2, "move", 0.5)
        with pytest.raises(ConfigError, match="closed"):
            lg.log_reproduction_event(1, "a1", None, False, 1.0, 1.0, None, "no", 0, None,
                                      (0.0, 0.0))
        assert rows(archive, "learning_experiences") == []
        assert rows(archive, "reproduction_events") == []
