"""A peer that answers but does not speak the Redis protocol (an HTTP server on the
port, say) is refused for good, blocking and asyncio alike (review 101): redis-py raises
``InvalidResponse``, which escaped as itself, not as an agentmem error."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

import agentmem
from agentmem.errors import Refused


@pytest.fixture
def http_port() -> Iterator[int]:
    """A real socket server on a loopback port that answers anything with HTTP."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(srv.getsockname()[1])
    stop.set()
    thread.join(5)
    srv.close()


def test_a_peer_of_another_protocol_is_refused(http_port: int) -> None:
    url = f"redis://127.0.0.1:{http_port}/0"
    mem = agentmem.connect(url, spin_us=0)
    with pytest.raises(Refused, match="InvalidResponse"):
        mem.ping()
    with pytest.raises(Refused, match="InvalidResponse"):
        mem.actions.recent("a1", 5)
    mem.close()


def test_a_peer_of_another_protocol_is_refused_in_asyncio(http_port: int) -> None:
    async def main() -> None:
        mem = agentmem.connect_async(f"redis://127.0.0.1:{http_port}/0")
        with pytest.raises(Refused, match="InvalidResponse"):
            await mem.ping()
        with pytest.raises(Refused, match="InvalidResponse"):
            await mem.actions.recent("a1", 5)
        await mem.close()

    asyncio.run(main())
