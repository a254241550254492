"""The durability contract (docs/durability.md), with real kills of real processes.

A child process writes through a ``DualWriter`` in one durability mode and reports
each acknowledgement on its stdout as it happens (``add_many`` returned; in the
``buffered`` mode, a ``flush()`` returned). The test kills it with SIGKILL at a
random instant, runs the documented recovery (a writer opening the same stores,
once the dead writer's lease has expired) and checks the archive: every
acknowledged action is there, once. SIGTERM flushes what was queued. Each test
prints its figures (acknowledged / archived / duplicated); docs/reliability.md
has the table.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.outbox import REGISTRY, drain
from agentmem.dualwrite.writer import DualWriter

SIM = "sim_durable"
LEASE = 0.3

CHILD = """
import json, random, sys
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter

url, db_url, mode, sim, lease, start = sys.argv[1:7]
thread = mode == "redis+thread"  # durability redis, due archive writes in a thread
mode = "redis" if thread else mode
w = DualWriter(agentmem.connect(url), open_archive(db_url), durability=mode,
               lease=float(lease), buffer_size=250, archive_thread=thread)
print("ready", flush=True)
rng, i = random.Random(), int(start)
while True:
    batch = [Action(agent_id=f"a{(i + k) % 7}", simulation_id=sim, step_number=(i + k) // 7,
                    action_type="move", reward=float(i + k)) for k in range(rng.randint(1, 40))]
    if mode == "buffered":
        for a in batch:
            w.add(a)
        w.flush()
    else:
        w.add_many(batch)
    print(json.dumps([i, i + len(batch)]), flush=True)
    i += len(batch)
"""


def _child(url: str, db_url: str, mode: str, start: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, db_url, mode, SIM, str(LEASE),
                             str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


def _acknowledged(proc: subprocess.Popen[str], kill_after: float, sig: int) -> set[float]:
    """Read acknowledgements until the child is killed ``kill_after`` seconds from now."""
    assert proc.stdout is not None
    timer = threading.Timer(kill_after, os.kill, (proc.pid, sig))
    timer.start()
    acked: set[float] = set()
    for line in proc.stdout:
        lo, hi = json.loads(line)
        acked.update(float(x) for x in range(lo, hi))
    proc.wait(timeout=60)
    timer.cancel()
    return acked


def _archived(db_url: str) -> list[float]:
    with open_archive(db_url) as archive:
        return [float(a.reward) for a in archive.read(SIM) if a.reward is not None]


def _recover(url: str, db_url: str) -> int:
    """The documented recovery: open a writer on the same stores once the dead writer's
    lease has expired (it drains the outbox), and close it."""
    time.sleep(LEASE + 0.2)
    with open_archive(db_url) as archive:
        w = DualWriter(agentmem.connect(url), archive)
        drained = w.recovered.read
        assert not w.recovered.busy, "another drainer held the drain lock: nothing drained"
        w.close()
    return drained


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["redis", "redis+thread", "buffered", "archived"])
def test_sigkill_at_random_instants_loses_nothing_acknowledged(
        server: object, db: Db, mode: str) -> None:  # noqa: F811
    url = server.url  # type: ignore[attr-defined]
    rng = random.Random()
    acked: set[float] = set()
    figures = []
    for n in range(3):
        proc = _child(url, db.url, mode, start=n * 10_000_000)
        got = _acknowledged(proc, rng.uniform(0.1, 0.7), signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        before = set(_archived(db.url))
        if mode == "archived":
            assert got <= before  # archived before the call returned: no recovery needed
        drained = _recover(url, db.url)
        acked |= got
        figures.append((len(got), len(got - before), drained))
    rows = _archived(db.url)
    missing = acked - set(rows)
    duplicated = len(rows) - len(set(rows))
    print(f"\nSIGKILL x3 {mode:9} {db.kind:10}: acknowledged {len(acked)}, archived "
          f"{len(set(rows))}, missing {len(missing)}, duplicated {duplicated}; per kill "
          f"(acknowledged, not archived at the kill, drained at recovery): {figures}")
    assert not missing
    assert duplicated == 0


@pytest.mark.parametrize("mode", ["redis", "buffered"])
def test_sigterm_flushes_what_was_queued(server: object, tmp_path: Path, mode: str) -> None:
    url = server.url  # type: ignore[attr-defined]
    db_path = str(tmp_path / "archive.db")
    script = f"""
import faulthandler, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view of a hang
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
w = DualWriter(agentmem.connect({url!r}), open_archive({db_path!r}), durability={mode!r},
               buffer_size=1_000_000, interval=3600, queue_size=100_000)
for i in range(5000):
    w.add(Action(agent_id=f"a{{i % 5}}", simulation_id={SIM!r}, step_number=i // 5,
                 action_type="move", reward=float(i)))
print("queued", flush=True)
import time
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "queued"
    proc.send_signal(signal.SIGTERM)
    try:  # read both pipes meanwhile: a child blocked on a full pipe would look hung
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # every thread's stack to stderr
        time.sleep(2)
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"no exit 60 s after SIGTERM; the child's threads:\n{err}") from None
    assert proc.returncode == 128 + signal.SIGTERM, err
    rows = _archived(db_path)
    print(f"\nSIGTERM {mode}: queued 5000, archived {len(set(rows))}, "
          f"duplicated {len(rows) - len(set(rows))}")
    assert sorted(rows) == [float(i) for i in range(5000)]


def test_the_outbox_lists_final_ids_and_is_emptied_by_the_archive_write(
        mem: agentmem.Memory, r: object, tmp_path: Path) -> None:
    client = r
    mem.actions.add(Action(agent_id="a1", simulation_id=SIM, step_number=1,
                           action_type="move"))  # a1-1-move taken: the writer's gets .1
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, buffer_size=100)
        stored = w.add_many([Action(agent_id="a1", simulation_id=SIM, step_number=1,
                                    action_type="move", reward=float(i)) for i in range(3)])
        assert stored is not None
        listed = [k.decode() for k in client.lrange(w.outbox.key, 0, -1)]  # type: ignore[attr-defined]
        assert listed == [f"agent:a1:action:{a.action_id}" for a in stored]
        assert [a.action_id for a in stored] == ["a1-1-move.1", "a1-1-move.2", "a1-1-move.3"]
        assert client.sismember(REGISTRY, w.outbox.key)  # type: ignore[attr-defined]
        w.flush()
        assert client.llen(w.outbox.key) == 0  # type: ignore[attr-defined]
        assert not client.sismember(REGISTRY, w.outbox.key)  # type: ignore[attr-defined]
        w.close()
        assert not client.exists(w.outbox.lease_key)  # type: ignore[attr-defined]


def test_a_live_writers_outbox_is_left_alone_unless_asked(
        mem: agentmem.Memory, r: object, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, buffer_size=1000, interval=3600, lease=60)
        w.add_many([Action(agent_id="a1", simulation_id=SIM, step_number=s,
                           action_type="move") for s in range(10)])
        assert drain(mem, archive).read == 0  # the lease is alive
        rep = drain(mem, archive, include_live=True)
        assert (rep.read, rep.archived) == (10, 10)
        assert archive.count(SIM) == 10
        w.add(Action(agent_id="a1", simulation_id=SIM, step_number=10, action_type="move"))
        w.flush()  # its list was claimed: it archives its buffer, drops nothing it did not read
        assert archive.count(SIM) == 11
        w.close()


@pytest.mark.slow
def test_concurrent_writers_and_drainers_lose_and_duplicate_nothing(
        server: object, db: Db) -> None:  # noqa: F811
    """Three writers killed at random instants while two `agentmem archive --follow --all`
    workers drain every outbox, running writers' included, as fast as they can."""
    url = server.url  # type: ignore[attr-defined]
    rng = random.Random()
    drainers = [subprocess.Popen(
        [sys.executable, "-m", "agentmem.cli", "--redis-url", url, "--archive-url", db.url,
         "archive", "--follow", "--all", "--every", "0.05"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        writers = [_child(url, db.url, "redis", start=n * 10_000_000) for n in range(3)]
        results: list[set[float]] = [set() for _ in writers]
        threads = [threading.Thread(target=lambda i=i, p=p: results[i].update(
            _acknowledged(p, rng.uniform(0.3, 1.5), signal.SIGKILL)))
            for i, p in enumerate(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for d in drainers:
            d.send_signal(signal.SIGINT)  # stops after its chunk, the drain lock released
        for d in drainers:
            d.wait(timeout=60)
    assert all(d.returncode == 0 for d in drainers), [d.stderr.read() for d in drainers
                                                       if d.stderr]
    drained = _recover(url, db.url)
    acked = set().union(*results)
    rows = _archived(db.url)
    missing = acked - set(rows)
    duplicated = len(rows) - len(set(rows))
    print(f"\n3 writers + 2 drainers {db.kind:10}: acknowledged {len(acked)}, archived "
          f"{len(set(rows))}, missing {len(missing)}, duplicated {duplicated}, drained at "
          f"recovery {drained}")
    assert not missing
    assert duplicated == 0
