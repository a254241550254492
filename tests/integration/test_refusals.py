"""Errors by kind: a refusal that waiting cannot fix raises ``Refused`` at once and is
never journaled; only an unreachable server is ``Unavailable`` (journaled, replayed).

Real servers: a Redis with a password, an ACL user without a command, a TLS server
whose self-signed certificate does not verify, a stopped server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _support import tls_redis

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite import DualWriter
from agentmem.errors import Refused, Unavailable
from agentmem.servers.local import LocalServer, find_binary, free_port

pytestmark = pytest.mark.skipif(find_binary("redis") is None, reason="no redis-server on PATH")


def act(step: int = 0) -> Action:
    return Action(agent_id="a1", simulation_id="s1", step_number=step, action_type="move")


@pytest.fixture(scope="module")
def protected() -> Iterator[LocalServer]:
    server = LocalServer("redis", extra_args=("--requirepass", "right-password")).start()
    try:
        yield server
    finally:
        server.close()


def _journal_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("url", ["redis://:wrong@127.0.0.1:{port}/0",
                                 "redis://127.0.0.1:{port}/0",
                                 "redis://nobody:x@127.0.0.1:{port}/0"],
                         ids=["wrong-password", "no-password", "unknown-user"])
def test_bad_credentials_are_refused_not_unavailable(protected: LocalServer, url: str) -> None:
    mem = agentmem.connect(url.format(port=protected.port))
    with pytest.raises(Refused, match="refused this client") as info:
        mem.actions.add(act())
    assert not isinstance(info.value, Unavailable)
    mem.close()


def test_a_dual_writer_raises_a_refusal_and_journals_nothing(protected: LocalServer,
                                                              tmp_path: Path) -> None:
    journal = tmp_path / "writer.journal"
    mem = agentmem.connect(f"redis://:wrong@127.0.0.1:{protected.port}/0")
    with open_archive(tmp_path / "a.db") as archive:
        with pytest.raises(Refused):  # at once: opening drains stopped writers' outboxes
            DualWriter(mem, archive, journal=journal)
        assert _journal_lines(journal) == 0
        assert archive.count() == 0
    mem.close()


def test_an_acl_refusal_is_refused(protected: LocalServer) -> None:
    admin = redis.Redis(port=protected.port, password="right-password")
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "-@all", "+ping",
                          "+hello", "+get")
    try:
        mem = agentmem.connect(f"redis://reader:pw@127.0.0.1:{protected.port}/0")
        with pytest.raises(Refused, match=r"NOPERM|permission"):
            mem.actions.add(act())
        mem.close()
    finally:
        admin.execute_command("ACL", "DELUSER", "reader")
        admin.close()


def test_a_certificate_that_does_not_verify_is_refused(tmp_path: Path) -> None:
    with tls_redis(tmp_path) as (port, _cert):
        mem = agentmem.connect(f"rediss://127.0.0.1:{port}/0")  # the system's CAs only
        with pytest.raises(Refused, match="certificate verify failed"):
            mem.actions.add(act())
        mem.close()


def test_an_unreachable_server_is_unavailable_and_journaled(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    mem = agentmem.connect(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
    with pytest.raises(Unavailable):
        mem.actions.add(act())
    journal = tmp_path / "writer.journal"
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive, journal=journal)
        w.add(act())  # acknowledged: journaled, to be replayed when Redis is back
        assert _journal_lines(journal) >= 1
        w.close()
        assert archive.count() == 1
    mem.close()


