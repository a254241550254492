"""The AgentFarm drop-in sends a batch again only when it was not taken on (real servers).

- SIGTERM or Ctrl-C while a flush's Redis write is in flight (its script ran, its reply
  is held by a relay): the exit hook's close stores nothing twice, in Redis or the
  archive, and loses nothing; in background mode, SIGTERM while a flush waits for room
  in the full queue does not queue again what it queued before.
- An error the writer kept from its thread (a ``DuplicateId`` of the archive write) is
  raised by the next flush, whose actions stay buffered (it stored nothing): the flush
  after stores them.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from _support import HoldingProxy

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.errors import DuplicateId
from agentmem.integrations.agentfarm import AgentFarmLogger

SIM = "sim_resend"
AG = 7
MARK = "held-reply-7f3a"
"""In the details of the actions whose write's reply the relay holds."""

CHILD = """
import atexit, sys
import agentmem
from agentmem.backends.sql import open_archive
from agentmem.integrations.agentfarm import AgentFarmLogger

url, db, mode, sim, mark, ag = sys.argv[1:7]
ag = int(ag)
logger = AgentFarmLogger(agentmem.connect(url), open_archive(db), sim,
                         background=mode == "background", commit_interval=3600,
                         send_ahead=mode == "ahead")
atexit.register(print, "exiting", flush=True)  # runs before the logger's close (LIFO)

def step(n, agents=ag, details=None):
    for a in range(agents):
        logger.log_agent_action(n, f"a{a}", "move", reward=float(n), details=details)
    logger.flush_if_needed()

for n in range(3):
    step(n)
logger.flush_action_buffer()  # stored and archived; the queue is empty
print("ready", flush=True)
if mode == "buffered":
    step(3, details={"tag": mark})  # its script runs, its reply is held: interrupted here
elif mode == "ahead":
    step(3, details={"tag": mark})  # sent ahead: returns; its script runs, its reply held
    for a in range(ag):
        logger.log_agent_action(4, f"a{a}", "move", reward=4.0)
    print("flushing", flush=True)
    logger.flush_if_needed()  # reads step 3's reply first: interrupted here
else:
    step(3, agents=1, details={"tag": mark})  # the thread's write of it: reply held
    sys.stdin.readline()  # the test saw that write go: the queue is empty again
    room, n = logger.writer.settings.queue_size, 4
    while room >= ag:  # fill the queue (the thread takes nothing while it waits)
        step(n)
        room, n = room - ag, n + 1
    print("blocking", n, room, flush=True)
    step(n)  # queues `room` actions, waits for room for the next: interrupted here
print("not interrupted", flush=True)
"""


def _relayed(server: Any) -> tuple[HoldingProxy, str]:
    parts = urlsplit(server.url)
    proxy = HoldingProxy(parts.hostname or "127.0.0.1", parts.port or 6379, MARK.encode())
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{proxy.port}" if auth else f"127.0.0.1:{proxy.port}"
    return proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _until(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    """Wait for a condition, failing after ``timeout`` seconds (not a timing check)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _line(proc: subprocess.Popen[str], want: str) -> str:
    """The child's next stdout line starting with ``want`` (the others skipped)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(want):
            return line.strip()
    proc.wait(timeout=60)
    raise AssertionError(f"no {want!r} line; stderr: {proc.stderr.read() if proc.stderr else ''}")


def _asleep(pid: int) -> bool:
    """Whether the process's main thread sleeps (state S in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "S"


def _stored(mem: agentmem.Memory, path: Path, agents: int) -> tuple[list[str], list[str]]:
    """The action ids Redis holds for the agents, and those the archive holds."""
    in_redis = [str(a.action_id) for n in range(agents)
                for a in mem.actions.recent(f"a{n}", 1_000_000)]
    conn = sqlite3.connect(path)
    try:
        archived = [row[0] for row in conn.execute(
            "SELECT x.action_id FROM agent_actions a "
            "JOIN agentmem_action_extras x ON x.row_id = a.action_id "
            "WHERE a.simulation_id = ?", (SIM,))]
    finally:
        conn.close()
    return in_redis, archived


def _once(ids: list[str]) -> None:
    twice = [i for i, n in Counter(ids).items() if n > 1]
    assert not twice, f"stored twice: {twice[:5]}"
    assert not [i for i in ids if "." in i], "an action stored again under a .n id"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
@pytest.mark.parametrize("mode", ["buffered", "ahead"])
def test_an_interrupted_flush_whose_write_ran_is_not_stored_twice(
        server: Any, r: redis.Redis, mem: agentmem.Memory, tmp_path: Path, sig: int,
        mode: str) -> None:
    """buffered: the flush waits for its reply (send_ahead=False); ahead: the flush after
    it reads the reply of the write sent ahead (the default)."""
    proxy, url = _relayed(server)
    path = tmp_path / "a.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(path), mode, SIM,
                              MARK, str(AG)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _line(child, "ready")
        assert proxy.seen.wait(60), "step 3's write never reached Redis"
        if mode == "ahead":
            _line(child, "flushing")  # step 4 logged whole
        child.send_signal(sig)  # while it waits for the reply of a script that ran
        _line(child, "exiting")  # the flush was interrupted; the exit hooks run
        proxy.release()
        child.wait(timeout=60)
    finally:
        proxy.close()
        if child.poll() is None:
            child.kill()
    assert child.returncode in (128 + sig, -sig), child.stderr.read() if child.stderr else ""
    in_redis, archived = _stored(mem, path, AG)
    steps = 5 if mode == "ahead" else 4  # ahead: step 4's actions, still buffered, too
    expected = sorted(f"a{a}-{n}-move" for n in range(steps) for a in range(AG))
    _once(in_redis)
    _once(archived)
    assert sorted(in_redis) == expected  # step 3 too: nothing lost
    assert sorted(archived) == expected


def test_background_sigterm_while_queueing_queues_nothing_twice(
        server: Any, r: redis.Redis, mem: agentmem.Memory, tmp_path: Path) -> None:
    proxy, url = _relayed(server)
    path = tmp_path / "a.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(path), "background", SIM,
                              MARK, str(AG)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdin is not None
    try:
        _line(child, "ready")
        assert proxy.seen.wait(60), "the thread's write of step 3 never reached Redis"
        child.stdin.write("go\n")
        child.stdin.flush()
        _, last, room = _line(child, "blocking").split()
        assert 0 < int(room) < AG  # the last step fits in part
        # its thread waits for the held reply: the main thread sleeps only in the queue's put
        _until("the last flush never waited for room in the queue",
               lambda: _asleep(child.pid))
        child.send_signal(signal.SIGTERM)
        _line(child, "exiting")
        proxy.release()
        child.wait(timeout=120)
    finally:
        proxy.close()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, child.stderr.read() if child.stderr else ""
    in_redis, archived = _stored(mem, path, AG)
    expected = sorted([f"a{a}-{n}-move" for n in range(3) for a in range(AG)] + ["a0-3-move"]
                      + [f"a{a}-{n}-move" for n in range(4, int(last) + 1) for a in range(AG)])
    _once(in_redis)
    _once(archived)
    assert sorted(in_redis) == expected
    assert sorted(archived) == expected


def _with_a_kept_error(mem: agentmem.Memory, path: Path, background: bool
                       ) -> AgentFarmLogger:
    """A logger whose writer's thread kept a ``DuplicateId`` of its archive write: another
    writer archived another ``a0-0-move``; steps 0 and 1 logged (an archive write is due
    from 3 rows on, and the buffer never fills: 2 a step; each flush waits for its write,
    so that step 1's flush finds the archive write due)."""
    logger = AgentFarmLogger(mem, open_archive(path), SIM, buffer_size=3,
                             commit_interval=3600, background=background,
                             archive_thread=not background, send_ahead=False)
    with open_archive(path) as other:
        other.write([Action(agent_id="a0", simulation_id=SIM, step_number=0,
                            action_type="move", action_id="a0-0-move", reward=99.0)])
    for n in range(2):
        for a in range(2):
            logger.log_agent_action(n, f"a{a}", "move", reward=float(n))
        logger.flush_if_needed()
    w = logger.writer
    _until("no archive write failed", lambda: (w._error or w._archive_error) is not None)
    return logger


@pytest.mark.parametrize("background", [True, False], ids=["background", "archive_thread"])
def test_a_kept_error_keeps_the_flushs_actions_for_the_next(
        server: Any, r: redis.Redis, mem: agentmem.Memory, tmp_path: Path,
        background: bool) -> None:
    path = tmp_path / "a.db"
    logger = _with_a_kept_error(mem, path, background)

    def step(n: int) -> None:
        for a in range(2):
            logger.log_agent_action(n, f"a{a}", "move", reward=float(n))
        logger.flush_if_needed()

    for a in range(2):
        logger.log_agent_action(2, f"a{a}", "move", reward=2.0)
    with pytest.raises(DuplicateId):
        logger.flush_if_needed()  # the kept error, raised before anything was stored
    assert [a.step_number for a in logger._action_buffer] == [2, 2]  # kept, not dropped
    assert not [a for a in mem.actions.timeline("a1") if a.step_number == 2]
    conn = sqlite3.connect(path)  # the other writer's row goes: the archive writes succeed
    with conn:
        conn.execute("DELETE FROM agentmem_action_extras WHERE action_id = 'a0-0-move'")
        conn.execute("DELETE FROM agent_actions WHERE reward = 99.0")
    conn.close()
    for _ in range(3):  # call it again: an error kept before the conflict went comes once
        try:
            logger.flush_action_buffer()
            break
        except DuplicateId:
            continue
    else:
        raise AssertionError("every flush raised DuplicateId")
    step(3)
    logger.close()
    in_redis, archived = _stored(mem, path, 2)
    expected = sorted(f"a{a}-{n}-move" for n in range(4) for a in range(2))
    assert sorted(in_redis) == expected
    assert sorted(archived) == expected


@pytest.mark.parametrize("background", [True, False], ids=["background", "archive_thread"])
def test_close_with_a_kept_error_still_stores_the_buffered_actions(
        server: Any, r: redis.Redis, mem: agentmem.Memory, tmp_path: Path,
        background: bool) -> None:
    """The exit hook's close is the last chance: a kept error does not keep it from
    storing what is buffered; the error is raised after."""
    logger = _with_a_kept_error(mem, tmp_path / "a.db", background)
    for a in range(2):
        logger.log_agent_action(2, f"a{a}", "move", reward=2.0)
    with pytest.raises(DuplicateId):
        logger.close()
    for a in range(2):  # in Redis (the archive keeps refusing a0-0-move: raised above)
        assert sorted(x.step_number for x in mem.actions.timeline(f"a{a}")) == [0, 1, 2]
    conn = sqlite3.connect(tmp_path / "a.db")  # the other writer's row goes: close ends
    with conn:
        conn.execute("DELETE FROM agentmem_action_extras WHERE action_id = 'a0-0-move'")
        conn.execute("DELETE FROM agent_actions WHERE reward = 99.0")
    conn.close()
    for _ in range(3):  # (an error the thread kept before the conflict went comes once)
        try:
            logger.close()
            break
        except DuplicateId:
            continue
    assert logger.writer.pending == 0
