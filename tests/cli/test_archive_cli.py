"""``agentmem archive``: the recovery a user runs after a writer died (docs/durability.md).

A child process writes 500 actions through a ``DualWriter`` that archives nothing
yet (a large buffer, a long interval) and is killed with SIGKILL. Its actions are
in Redis and listed in its outbox; ``agentmem archive`` leaves them while the dead
writer's lease runs (or takes them at once with ``--all``), and ``--follow`` takes
them when the lease has expired. Real Redis, real SQLite, real processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentmem.backends.sql import open_archive

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
