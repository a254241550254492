"""Connecting by URL to real servers: unix sockets, ACL users, TLS, pool options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

import agentmem
from agentmem.servers.local import LocalServer, find_binary, free_port

pytestmark = pytest.mark.skipif(find_binary("redis") is None, reason="redis-server not on PATH")


def _roundtrip(mem: agentmem.Memory) -> None:
    stored = mem.actions.record(agent_id="a1", simulation_id="s1", step_number=3,
                                action_type="move", reward=0.25)
    assert mem.actions.get(stored.action_id, agent_id="a1") == stored


def test_unix_socket_url(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = LocalServer("redis", extra_args=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    with server, agentmem.connect(f"unix://{sock}?db=2") as mem:
        _roundtrip(mem)
        assert mem.client.connection_pool.connection_kwargs["db"] == 2


def test_acl_user_and_password_in_url() -> None:
    with LocalServer("redis") as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("agent", enabled=True, passwords=["+s3cret"], keys=["*"],
                          commands=["+@all"])
        url = f"redis://agent:s3cret@127.0.0.1:{server.port}/0"
        with agentmem.connect(url) as mem:
            _roundtrip(mem)
            assert mem.client.acl_whoami() in ("agent", b"agent")


def test_wrong_password_is_a_clear_backend_error() -> None:
    with LocalServer("redis") as server:
        redis.Redis.from_url(server.url).acl_setuser(
            "agent", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
        url = f"redis://agent:wrong@127.0.0.1:{server.port}/0"
        with agentmem.connect(url) as mem, \
                pytest.raises(agentmem.BackendError, match="credentials"):
            mem.actions.steps("s1")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_url(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    tls_port = free_port()
    server = LocalServer("redis", extra_args=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"))
    try:
        server.start()
    except agentmem.AgentMemError:
        pytest.skip("this redis-server was built without TLS")
    with server:
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
        with agentmem.connect(url) as mem:
            _roundtrip(mem)
            assert mem.client.connection_pool.connection_class is redis.SSLConnection


def test_pool_options_reach_the_pool() -> None:
    with LocalServer("redis") as server, \
            agentmem.connect(server.url, max_connections=3, socket_timeout=5) as mem:
        pool = mem.client.connection_pool
        assert pool.max_connections == 3
        assert pool.connection_kwargs["socket_timeout"] == 5
        _roundtrip(mem)


def test_unreachable_server_raises_unavailable() -> None:
    with agentmem.connect(f"redis://127.0.0.1:{free_port()}/0") as mem:
        with pytest.raises(agentmem.Unavailable) as err:
            mem.actions.recent("a1")
        assert isinstance(err.value, ConnectionError)
        assert isinstance(err.value, agentmem.AgentMemError)


def test_valkey_scheme_is_accepted() -> None:
    with LocalServer("redis") as server, \
            agentmem.connect(f"valkey://127.0.0.1:{server.port}/1") as mem:
        _roundtrip(mem)
        assert mem.client.connection_pool.connection_kwargs["db"] == 1


async def test_async_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    with LocalServer("redis", extra_args=("--unixsocket", str(sock))):
        async with agentmem.connect_async(f"unix://{sock}") as mem:
            stored = await mem.actions.record(agent_id="a1", simulation_id="s1",
                                              step_number=1, action_type="gather")
            assert await mem.actions.relative("a1", 0) == stored
