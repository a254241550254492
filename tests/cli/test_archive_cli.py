"""``agentmem archive``: the recovery a user runs after a writer died (docs/durability.md).

A child process writes 500 actions through a ``DualWriter`` that archives nothing
yet (a large buffer, a long interval) and is killed with SIGKILL. Its actions are
in Redis and listed in its outbox; ``agentmem archive`` leaves them while the dead
writer's lease runs (or takes them at once with ``--all``), and ``--follow`` takes
them when the lease has expired. Real Redis, real SQLite, real processes.

A drainer stopped while it holds the drain lock (a relay holds the reply of the
command that took it) must not keep the documented recovery from draining: Ctrl-C
releases the lock, and ``agentmem archive`` waits for the lock of a killed drainer.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from _support import HoldingProxy

import agentmem
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.outbox import DRAIN_LOCK
from agentmem.dualwrite.writer import DualWriter

SIM = "sim_cli_archive"
CHILD = """
import sys, time
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
w = DualWriter(agentmem.connect(sys.argv[1]), open_archive(sys.argv[2]), lease=float(sys.argv[3]),
               buffer_size=100_000, interval=3600)
w.add_many([Action(agent_id=f"a{i % 4}", simulation_id=SIM, step_number=i // 4,
                   action_type="move", reward=float(i)) for i in range(500)])
print("stored", flush=True)
time.sleep(600)
""".replace("SIM", repr(SIM))


def _dead_writer(url: str, db: str, lease: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, db, str(lease)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "stored"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _cli(url: str, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentmem.cli", "--redis-url", url,
                           "--archive-url", db, "archive", "--json", *args],
                          capture_output=True, text=True, timeout=120)


def _count(db: str) -> int:
    with open_archive(db) as archive:
        return archive.count(SIM)


def test_archive_takes_a_dead_writers_outbox(server: object, tmp_path: Path) -> None:
    url, db = server.url, str(tmp_path / "a.db")  # type: ignore[attr-defined]
    _dead_writer(url, db, lease=60)
    assert _count(db) == 0
    alive = _cli(url, db)
    assert alive.returncode == 0, alive.stderr
    assert '"read": 0' in alive.stdout  # its lease still runs
    forced = _cli(url, db, "--all")
    assert forced.returncode == 0, forced.stderr
    assert '"archived": 500' in forced.stdout
    assert _count(db) == 500


@pytest.mark.slow
def test_archive_follow_takes_it_when_the_lease_expires(server: object, tmp_path: Path) -> None:
    url, db = server.url, str(tmp_path / "a.db")  # type: ignore[attr-defined]
    _dead_writer(url, db, lease=1.0)
    worker = subprocess.Popen([sys.executable, "-m", "agentmem.cli", "--redis-url", url,
                               "--archive-url", db, "archive", "--follow", "--every", "0.2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while _count(db) < 500 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _count(db) == 500
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
    assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""


def _until(what: str, done: object, timeout: float = 60) -> None:
    """Wait for a condition (``done()`` true), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _drainer_taking_the_lock(server: object, db: str, *args: str, hold: bool = True
                             ) -> tuple[subprocess.Popen[str], HoldingProxy]:
    """``agentmem archive ...`` through a relay that has let its lock ``SET`` run and holds
    the reply: the drainer holds the drain lock and does not know it yet (``hold=False``:
    a relay that counts the drainer's commands on the lock)."""
    parts = urlsplit(server.url)  # type: ignore[attr-defined]
    proxy = HoldingProxy(parts.hostname or "127.0.0.1", parts.port or 6379,
                         DRAIN_LOCK.encode(), hold=hold)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{proxy.port}" if auth else f"127.0.0.1:{proxy.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    worker = subprocess.Popen([sys.executable, "-m", "agentmem.cli", "--redis-url", url,
                               "--archive-url", db, "archive", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proxy.seen.wait(60), "the drainer never took the drain lock"
    return worker, proxy


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_taking_the_drain_lock_leaves_it_free(
        server: object, r: redis.Redis, tmp_path: Path, presses: int) -> None:
    """Once: the drainer stops after the reply. Twice: it is interrupted in the middle of
    waiting for it (KeyboardInterrupt), and releases what its SET may have taken."""
    url, db = server.url, str(tmp_path / "a.db")  # type: ignore[attr-defined]
    _dead_writer(url, db, lease=0.3)
    worker, proxy = _drainer_taking_the_lock(server, db, "--follow", "--all", "--every", "0.05")
    try:
        _until("the lock SET never ran", lambda: r.exists(DRAIN_LOCK))
        worker.send_signal(signal.SIGINT)  # while it waits for the SET's reply
        assert worker.stderr is not None
        said = worker.stderr.readline()  # "stopping ...", or nothing: it exited
        if presses == 2 and said:
            worker.send_signal(signal.SIGINT)
            _until("no release sent", lambda: proxy.hits >= 2 or worker.poll() is not None)
        proxy.release()
        worker.wait(timeout=60)
    finally:
        proxy.close()
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, said
    assert not r.exists(DRAIN_LOCK), "the drain lock is held for its 60 s time to live"
    assert "stopping" in said
    _until("the dead writer's lease never expired",
           lambda: not list(r.scan_iter(match="agentmem:outbox:*:lease")))
    with open_archive(db) as archive:  # the documented recovery: a writer opening
        w = DualWriter(agentmem.connect(url), archive)
        assert not w.recovered.busy
        w.close()
    assert _count(db) == 500


def test_archive_waits_for_the_drain_lock_of_a_killed_drainer(
        server: object, r: redis.Redis, tmp_path: Path) -> None:
    url, db = server.url, str(tmp_path / "a.db")  # type: ignore[attr-defined]
    _dead_writer(url, db, lease=60)
    worker, proxy = _drainer_taking_the_lock(server, db, "--all")
    try:
        _until("the lock SET never ran", lambda: r.exists(DRAIN_LOCK))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    finally:
        proxy.close()
    assert r.pttl(DRAIN_LOCK) > 0  # held by nobody until its time to live runs out
    recovery, relay = _drainer_taking_the_lock(server, db, "--json", "--all", hold=False)
    try:  # it found the lock taken: it tries again (or, before the fix, gave up)
        _until("no second try", lambda: relay.hits >= 2 or recovery.poll() is not None)
        r.pexpire(DRAIN_LOCK, 1)  # the killed drainer's 60 s run out
        out, err = recovery.communicate(timeout=120)
    finally:
        relay.close()
    assert recovery.returncode == 0, err
    assert '"busy": false' in out, out
    assert '"archived": 500' in out
    assert _count(db) == 500


def test_archive_that_cannot_take_the_drain_lock_exits_busy(
        server: object, r: redis.Redis, tmp_path: Path) -> None:
    """A one-shot ``agentmem archive`` that finds the drain lock held for longer than
    ``--wait`` drains nothing and says so with exit status 12 (``busy``), not 0."""
    url, db = server.url, str(tmp_path / "a.db")  # type: ignore[attr-defined]
    _dead_writer(url, db, lease=60)
    r.set(DRAIN_LOCK, "someone-else", px=60_000)
    try:
        held = _cli(url, db, "--all", "--wait", "0.3")
    finally:
        r.delete(DRAIN_LOCK)
    assert held.returncode == 12, (held.returncode, held.stdout, held.stderr)
    assert '"busy": true' in held.stdout
    assert _count(db) == 0
    free = _cli(url, db, "--all", "--wait", "0.3")
    assert free.returncode == 0, free.stderr
    assert '"archived": 500' in free.stdout
