"""Writes sent ahead (``DualWriter.send_many``, ``RedisRunner.start``) against real servers.

A write sent ahead returns before its reply; the writer's next call reads it. These
tests check what that must not change: every action reaches Redis and the archive
exactly once, a read through the same store sees the write, a refusal is raised (by
the next call), and a server killed while the write is in flight loses nothing the
writer took on (the journal's replay stores it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action, Memory, WriteError
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.outbox import drain
from agentmem.dualwrite.writer import DualWriter
from agentmem.integrations.agentfarm import AgentFarmLogger
from agentmem.servers.local import LocalServer, find_binary

SIM = "sim_ahead"


def act(agent_id: str, step: int, action_type: str = "move", **fields: Any) -> Action:
    return Action(agent_id=agent_id, simulation_id=SIM, step_number=step,
                  action_type=action_type, **fields)


def step_actions(step: int, agents: int = 5) -> list[Action]:
    return [act(f"a{n}", step, reward=float(step)) for n in range(agents)]


@pytest.fixture
def private(tmp_path: Path) -> Iterator[LocalServer]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server binary")
    srv = LocalServer("redis", directory=tmp_path / "redis", appendonly=True,
                      extra_args=("--appendfsync", "always")).start()
    yield srv
    srv.close()


def test_send_many_returns_before_the_reply_and_the_next_call_reads_it(
        mem: Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        w.send_many(step_actions(0))
        assert w.in_flight == 5
        assert w.pending == 5
        assert w.accepted == 5
        w.send_many(step_actions(1))  # reads the first reply, sends the second
        assert w.in_flight == 5
        assert w.pending == 10
        w.close()
        assert w.in_flight == 0
        assert archive.count(SIM) == 10
    assert len(mem.actions.simulation_actions(SIM)) == 10


def test_a_read_through_the_same_store_sees_the_write_in_flight(
        mem: Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        for step in range(20):
            w.send_many(step_actions(step))
            assert w.in_flight == 5
            recent = mem.actions.recent("a3", 1)  # the runner reads the reply first
            assert [a.step_number for a in recent] == [step]
        with mem.batch() as b:
            handle = b.actions.recent("a0", 100)
        assert len(handle.result()) == 20
        w.close()
        assert archive.count(SIM) == 100


def test_commands_of_your_own_through_the_client_see_the_write_in_flight(
        mem: Memory, tmp_path: Path) -> None:
    """``mem.client`` (the redis-py client, used by the integrity walk and the
    CLI's stats too) settles the write sent ahead before it is handed out."""
    from agentmem.backends.masters import scan_keys

    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        for step in range(5):
            w.send_many(step_actions(step))
            assert w.in_flight == 5
            assert mem.client.zcard("agent:a3:action:timeline") == step + 1
        w.send_many(step_actions(5))
        keys = set(scan_keys(mem, "agent:a0:action:*", 1000))  # the CLI's stats, check()
        assert b"agent:a0:action:a0-5-move" in keys
        w.close()


def test_a_refused_record_is_raised_by_the_next_call_and_the_others_are_archived(
        mem: Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        first = w.add_many([act("a1", 1, action_id="a1-1-fixed")])
        assert first is not None
        w.send_many([act("a1", 1), act("a1", 1, action_id="a1-1-fixed"), act("a2", 1)])
        with pytest.raises(WriteError) as info:
            w.flush()
        assert set(info.value.failed) == {1}
        w.close()
        assert archive.count(SIM) == 3  # the first write's one, and the two stored
    assert len(mem.actions.simulation_actions(SIM)) == 3


def test_bad_input_raises_at_send_many_and_sends_nothing(mem: Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        with pytest.raises(agentmem.InvalidInput):
            w.send_many([act("a1", 0), "not an action"])  # type: ignore[list-item]
        assert w.in_flight == 0
        assert w.accepted == 0
        w.close()
        assert archive.count(SIM) == 0


def test_strict_writes_are_not_sent_ahead(mem: Memory, tmp_path: Path) -> None:
    """strict=True raises connection errors at the call: it keeps no journal for a reply
    lost later, so its writes wait for their reply."""
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, strict=True)
        w.send_many(step_actions(0))
        assert w.in_flight == 0
        assert w.pending == 5
        w.close()


@pytest.mark.parametrize("fault", ["killed before running it", "stopped then killed"])
def test_a_server_killed_with_a_write_in_flight_loses_nothing(
        private: LocalServer, tmp_path: Path, fault: str) -> None:
    """The server (appendfsync always) dies with a write sent ahead whose reply the
    writer never read: killed at once, or stopped with SIGSTOP (the write sent then
    cannot run) and then killed. The next call finds the reply lost, journals the
    actions, and once the server is back the replay stores those it lacks: Redis and the
    archive hold every action taken on, once."""
    mem = agentmem.connect(private.url, socket_connect_timeout=0.5, socket_timeout=2)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, retry_interval=0.05,
                       journal=tmp_path / "journal")
        w.send_many(step_actions(0))
        w.send_many(step_actions(1))  # step 0 read back; step 1 in flight
        assert private.process is not None
        if fault == "stopped then killed":
            os.kill(private.process.pid, signal.SIGSTOP)
            w.send_many(step_actions(2))  # step 1 read (ran before the stop); 2 sent
        private.kill()
        w.send_many(step_actions(3))  # the reply in flight is lost: journaled
        assert w.redis_down
        private.start()
        w.send_many(step_actions(4))  # replays the journal first, then writes
        w.close()
        steps = 5 if fault == "stopped then killed" else 4
        assert archive.count(SIM) == 5 * steps
    stored = mem.actions.simulation_actions(SIM)
    ids = [a.action_id for a in stored]
    assert len(ids) == len(set(ids)) == 5 * steps
    mem.close()


@pytest.mark.parametrize("send_ahead", [True, False])
def test_the_dropin_sends_each_step_ahead_and_reads_see_it(
        mem: Memory, tmp_path: Path, send_ahead: bool) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, send_ahead=send_ahead)
        for step in range(10):
            for agent in ("a1", "a2"):
                lg.log_agent_action(step, agent, "move", reward=0.5)
            lg.flush_if_needed()
            assert lg.writer.in_flight == (2 if send_ahead else 0)
            assert lg.needs_flush
            assert [a.step_number for a in mem.actions.recent("a2", 1)] == [step]
            got = lg.recall(["a1"], recent=3)
            assert [a.step_number for a in got["a1"].recent] == \
                list(range(step, max(step - 3, -1), -1))
        lg.close()
        assert archive.count(SIM) == 20


KILLED_CHILD = """
import os, signal, sys
import agentmem
from agentmem.backends.sql import open_archive
from agentmem.integrations.agentfarm import AgentFarmLogger

url, db, steps, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lg = AgentFarmLogger(agentmem.connect(url), open_archive(db), "sim_ahead")
for step in range(steps):
    for a in range(per):
        lg.log_agent_action(step, f"a{a}", "move", reward=1.0)
    lg.flush_if_needed()  # the last one returns before its reply
print("flushed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("steps", [1, 3])
def test_a_process_killed_right_after_a_flush_sent_ahead_loses_nothing_on_loopback(
        private: LocalServer, tmp_path: Path, steps: int) -> None:
    """SIGKILL right after the flush returned, with its write's reply unread. The write
    runs anyway, even the process's first (sent as EVAL with the script's text: an
    EVALSHA the server did not know would be refused, and nobody reads the refusal to
    load the script); its outbox entries let the next writer archive it."""
    db = tmp_path / "a.db"
    per = 50
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, private.url, str(db),
                            str(steps), str(per)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "flushed" in child.stdout
    mem = agentmem.connect(private.url)
    wait_until = time.monotonic() + 10
    while len(mem.actions.simulation_actions(SIM)) < steps * per:
        assert time.monotonic() < wait_until, "the last write never ran"
        time.sleep(0.05)
    with open_archive(db) as archive:
        drain(mem, archive, include_live=True)  # agentmem archive --all: its lease is live
        assert archive.count(SIM) == steps * per
    mem.close()


def test_a_write_refused_whole_is_stored_by_the_next_write(private: LocalServer,
                                                           tmp_path: Path) -> None:
    """Redis refuses a whole write sent ahead (OOM: maxmemory below what it uses). Its
    actions were taken on (the drop-in dropped them from its buffer): the next write
    stores them first, or raises the refusal and keeps them; nothing is lost."""
    mem = agentmem.connect(private.url)
    admin = redis.Redis.from_url(private.url)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        w.send_many(step_actions(0))
        w.send_many(step_actions(1))  # step 0 read back
        admin.config_set("maxmemory", "1")
        w.send_many(step_actions(2))  # step 1 read back; step 2 refused whole (OOM)
        with pytest.raises(agentmem.BackendError, match="maxmemory"):
            w.send_many(step_actions(3))  # step 2 again first: refused again, raised
        assert w.accepted == 15  # step 3 was not taken on: its caller keeps it
        assert w.in_flight == 5  # step 2's actions, waiting
        admin.config_set("maxmemory", "0")
        w.send_many(step_actions(3))  # step 2 stored first, then step 3 sent
        w.close()
        assert archive.count(SIM) == 20
    assert len(mem.actions.simulation_actions(SIM)) == 20
    admin.close()
    mem.close()


def test_records_of_a_call_refused_whole_in_a_step_of_several_wait_for_the_next_write(
        private: LocalServer, tmp_path: Path) -> None:
    """A step sent ahead as several script calls (``batch_size``): the first runs and
    fills the server to ``maxmemory``, the later ones are refused (OOM). The records
    stored join the archive buffer, the refused ones wait for the next write, which
    stores them once the server has room (in part when it has room for part: the rest
    waits again, and that call raises why; so does close(), which leaves the writer
    open); nothing is lost."""
    mem = agentmem.connect(private.url, batch_size=20)
    admin = redis.Redis.from_url(private.url)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        w.send_many(step_actions(0))
        w.flush()
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", str(used + 150_000))  # room for a call or two
        step = [act(f"a{n % 5}", 1 + n // 5, details={"pad": "x" * 2_000})
                for n in range(100)]  # 5 calls of 20, each about 60 kB
        w.send_many(step)
        with pytest.raises(agentmem.BackendError, match="maxmemory"):
            w.flush_if_needed()  # the reply read; the refused records tried again: OOM
        assert 0 < w.in_flight < 100  # the records of the refused calls wait
        waiting = w.in_flight
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", str(used + 150_000))  # room for a call again
        with pytest.raises(agentmem.BackendError, match="wait for the next write"):
            w.flush_if_needed()  # tried again: stored in part, the rest waits again
        assert 0 < w.in_flight < waiting
        with pytest.raises(agentmem.BackendError, match="maxmemory"):
            w.close()  # some still wait: close says so and the writer stays open
        admin.config_set("maxmemory", "0")
        w.send_many(step_actions(100))  # stores the waiting ones first
        w.close()
        assert w.accepted == 5 + 100 + 5
        assert archive.count(SIM) == 110
    assert len(mem.actions.simulation_actions(SIM)) == 110
    assert waiting >= 20
    admin.close()
    mem.close()


EXIT_CHILD = r"""
import sys
import redis
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
url, db = sys.argv[1:3]
w = DualWriter(agentmem.connect(url), open_archive(db))
def step(s):
    return [Action(agent_id=f"a{n}", simulation_id="sim_ahead", step_number=s,
                   action_type="move") for n in range(5)]
w.send_many(step(0))
w.flush()
redis.Redis.from_url(url).config_set("maxmemory", "1")
w.send_many(step(1))  # refused whole (OOM): it waits for the next write
print("exiting", w.accepted, flush=True)
"""


def test_actions_redis_still_refuses_at_exit_are_journaled_for_the_next_writer(
        private: LocalServer, tmp_path: Path) -> None:
    """A process exits (no close) while Redis still refuses a write sent ahead (OOM): the
    exit hook's close fails, and the waiting actions are journaled, not lost; the next
    writer on the archive, once Redis has room, stores them in Redis and the archive."""
    db = tmp_path / "a.db"
    child = subprocess.run([sys.executable, "-c", EXIT_CHILD, private.url, str(db)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert "exiting 10" in child.stdout, child.stderr
    assert "in the replay journal" in child.stderr
    admin = redis.Redis.from_url(private.url)
    admin.config_set("maxmemory", "0")
    mem = agentmem.connect(private.url)
    with open_archive(db) as archive:
        DualWriter(mem, archive, lease=0.3).close()  # adopts and replays the journal
        assert sorted((a.step_number, a.agent_id) for a in archive.read(SIM)) == \
            sorted((s, f"a{n}") for s in range(2) for n in range(5))
    assert len(mem.actions.simulation_actions(SIM)) == 10
    admin.close()
    mem.close()


def test_discard_works_while_redis_refuses_writes(private: LocalServer,
                                                 tmp_path: Path) -> None:
    """Redis at maxmemory refuses writes (OOM), not deletes: the drop-in's
    discard_pending_agents removes the agent's stored, unarchived actions from Redis
    (the delete script is flagged allow-oom: it frees memory)."""
    mem = agentmem.connect(private.url)
    admin = redis.Redis.from_url(private.url)
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM, send_ahead=False)
        for step in range(3):
            for a in ("a1", "a2"):
                lg.log_agent_action(step, a, "move")
            lg.flush_if_needed()  # in Redis, not archived yet
        admin.config_set("maxmemory", "1")
        assert lg.discard_pending_agents(["a1"]) == 3
        assert mem.actions.timeline("a1") == []
        admin.config_set("maxmemory", "0")
        lg.close()
        assert sorted({a.agent_id for a in archive.read(SIM)}) == ["a2"]
    admin.close()
    mem.close()


def test_a_taken_id_is_raised_while_redis_is_unreachable(private: LocalServer,
                                                         tmp_path: Path) -> None:
    """A write sent ahead that cannot reach Redis is journaled; an action whose id the
    writer knows is taken is refused with DuplicateId, as add_many refuses it."""
    mem = agentmem.connect(private.url, socket_connect_timeout=0.5, socket_timeout=2)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, retry_interval=60, journal=tmp_path / "journal")
        w.send_many([act("a1", 0, action_id="a1-0-x1")])
        w.flush()
        private.kill()
        with pytest.raises(agentmem.DuplicateId):
            w.send_many([act("a1", 0, action_id="a1-0-x1"), act("a2", 0)])
        assert w.redis_down
        private.start()
        w.close()
        assert archive.count(SIM) == 2
    mem.close()


def test_discard_drops_the_actions_of_a_write_refused_whole(private: LocalServer,
                                                            tmp_path: Path) -> None:
    """The AgentFarm drop-in's discard_pending_agents reaches the actions a write sent
    ahead could not store (refused whole, waiting for the next write): never stored."""
    mem = agentmem.connect(private.url)
    admin = redis.Redis.from_url(private.url)
    with open_archive(tmp_path / "a.db") as archive:
        lg = AgentFarmLogger(mem, archive, SIM)
        for step in range(2):
            for a in ("a1", "a2"):
                lg.log_agent_action(step, a, "move")
            if step == 1:
                admin.config_set("maxmemory", "1")
            lg.flush_if_needed()  # step 1 sent ahead: refused whole (OOM)
        mem.actions.recent("a2", 1)  # a read: the refusal is read back (and kept)
        admin.config_set("maxmemory", "0")
        # a1's: step 0's, stored and not archived (deleted from Redis), and step 1's,
        # refused and waiting for the next write (never stored)
        assert lg.discard_pending_agents(["a1"]) == 2
        lg.close()
        assert [(a.step_number, a.agent_id) for a in
                sorted(mem.actions.simulation_actions(SIM),
                       key=lambda a: (a.step_number, a.agent_id))] == [(0, "a2"), (1, "a2")]
        assert archive.count(SIM) == 2
    admin.close()
    mem.close()
