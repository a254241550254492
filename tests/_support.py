"""Helpers shared by the test modules (no fixtures here; those live in conftest.py)."""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import redis
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from agentmem import Action, Identifier, Record, Split
from agentmem.model.fields import check_id
from agentmem.servers.local import LocalServer


@dataclass(frozen=True)
class Server:
    """A server of the session's ``server`` fixture (tests/conftest.py)."""

    kind: str
    url: str
    local: LocalServer | None


def act(agent_id: str = "a1", step: int = 1, action_type: str = "move", *,
        sim: str = "sim01", **fields: Any) -> Action:
    """A valid Action with short positional defaults."""
    return Action(agent_id=agent_id, simulation_id=sim, step_number=step,
                  action_type=action_type, **fields)


def ids(actions: Iterable[Action | None]) -> list[str | None]:
    return [None if a is None else a.action_id for a in actions]


def expire_now(client: redis.Redis, key: str) -> None:
    """Let ``key`` expire for real (a 1 ms TTL) and wait until the server has dropped it."""
    assert client.pexpire(key, 1)
    deadline = time.monotonic() + 5
    while client.exists(key):  # EXISTS expires the key lazily once its TTL has passed
        assert time.monotonic() < deadline, f"{key} did not expire"
        time.sleep(0.002)


class _Resp:
    """Counts complete commands in a client-to-server RESP byte stream."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> int:
        self.buf += data
        n = 0
        while True:
            end = self._command_end(self.buf)
            if end is None:
                return n
            self.buf = self.buf[end:]
            n += 1

    @staticmethod
    def _command_end(buf: bytes) -> int | None:
        if not buf:
            return None
        line = buf.find(b"\r\n")
        if line < 0:
            return None
        if buf[:1] != b"*":  # inline command: one line
            return line + 2
        count = int(buf[1:line])
        pos = line + 2
        for _ in range(count):
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            assert buf[pos:pos + 1] == b"$", buf[pos:pos + 20]
            size = int(buf[pos + 1:nl])
            pos = nl + 2 + size + 2
            if pos > len(buf):
                return None
        return pos


class CountingProxy:
    """A TCP relay in front of a real server that counts the commands clients send.

    Commands run inside a Lua script never cross the wire, so ``commands`` is the
    number of top-level commands (one per round trip for a single-command query).
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.commands = 0
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def reset(self) -> None:
        with self.lock:
            self.commands = 0

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, _Resp()),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, parser: _Resp | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if parser is not None:
                    n = parser.feed(data)
                    with self.lock:
                        self.commands += n
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            s.close()


class HoldingProxy:
    """A TCP relay in front of a real server that, once a client sends a command holding
    ``marker``, forwards that command but holds the server's replies to that client until
    :meth:`release`: the command has run, its caller waits for the reply. ``seen`` is set
    when the command has been forwarded; ``hits`` counts such commands. With
    ``hold=False`` it only counts them."""

    def __init__(self, host: str, port: int, marker: bytes, *, hold: bool = True) -> None:
        self.target = (host, port)
        self.marker = marker
        self.hits = 0
        self.seen = threading.Event()
        self.released = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        if not hold:
            self.released.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            held = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, held, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, held, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, held: threading.Event,
              to_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_server and self.marker in data:
                    self.hits += data.count(self.marker)
                    if not self.released.is_set():
                        held.set()  # before the command goes: its reply cannot pass
                    dst.sendall(data)
                    self.seen.set()
                    continue
                if not to_server and held.is_set():
                    self.released.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.release()
        self.listener.close()
        for s in self.sockets:
            s.close()


# -- hypothesis strategies for Action values ------------------------------------------

def _is_id(s: str, n: int) -> bool:
    try:
        check_id(s, max_length=n)
    except ValueError:
        return False
    return True


id_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1,
                  max_size=64).filter(lambda s: _is_id(s, 64))
types = id_text.filter(lambda s: len(s) <= 20 and "-" not in s and "." not in s)
finite = st.floats(allow_nan=False, allow_infinity=False)
extreme = st.sampled_from([1e308, -1e308, 5e-324, -5e-324, -0.0, 0.0, 2.2250738585072014e-308,
                           1.7976931348623157e308, 0.1, 1 / 3])
numbers = finite | extreme
free_text = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
"""Any character of a free-text field (no NUL: the archive cannot store it)."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**64, max_value=2**200)
    | numbers | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
embeddings = st.integers(min_value=1, max_value=64).flatmap(
    lambda n: hnp.arrays(np.float32, n, elements=st.floats(width=32, allow_nan=False,
                                                           allow_infinity=False)))


@st.composite
def actions(draw, *, with_action_id: bool = True):
    """Any valid Action (with or without an explicit, arbitrary action_id)."""
    opt = lambda s: st.none() | s  # noqa: E731
    return Action(
        agent_id=draw(id_text), simulation_id=draw(id_text),
        step_number=draw(st.integers(min_value=0, max_value=2**53)),
        action_type=draw(types),
        action_id=draw(opt(id_text)) if with_action_id else None,
        action_target_id=draw(opt(id_text)),
        state_before_id=draw(opt(st.text(free_text, max_size=128))),
        state_after_id=draw(opt(st.text(free_text, max_size=128))),
        resources_before=draw(opt(numbers)), resources_after=draw(opt(numbers)),
        reward=draw(opt(numbers)),
        details=draw(json_values),
        position=draw(opt(st.tuples(numbers, numbers))),
        embedding=draw(opt(embeddings)),
        module_type=draw(opt(st.text(free_text, max_size=50))),
        module_id=draw(opt(st.text(free_text, max_size=64))),
    )


# -- records that must not validate (the model's unit tests and the stored ones) --

BASE = {"agent_id": "a1", "simulation_id": "sim01", "step_number": 1, "action_type": "move"}


class Opaque:
    pass


BAD_FIELDS = {
    "nan-reward": {"reward": math.nan},
    "inf-reward": {"reward": math.inf},
    "minus-inf-resources": {"resources_before": -math.inf},
    "nan-position": {"position": (math.nan, 0.0)},
    "negative-step": {"step_number": -1},
    "21-char-type": {"action_type": "x" * 21},
    "set-details": {"details": {1, 2}},
    "object-details": {"details": Opaque()},
    "nan-details": {"details": {"x": [math.nan]}},
    "inf-details": {"details": math.inf},
    "numpy-nan-details": {"details": np.array([1.0, np.nan])},
    "float64-embedding": {"embedding": np.zeros(4)},
    "2d-embedding": {"embedding": np.zeros((2, 2), dtype=np.float32)},
    "empty-embedding": {"embedding": np.zeros(0, dtype=np.float32)},
    "nan-embedding": {"embedding": np.array([np.nan], dtype=np.float32)},
    "list-embedding": {"embedding": [0.1, 0.2, 0.3, 0.4]},
    "bad-agent-id": {"agent_id": "a:1"},
    "empty-agent-id": {"agent_id": ""},
    "long-agent-id": {"agent_id": "a" * 65},
    "space-in-type": {"action_type": "mo ve"},
    "reserved-action-id": {"action_id": "timeline"},
    "unknown-field": {"colour": "red"},
    "missing-simulation": {"simulation_id": None},
    "int-agent-id": {"agent_id": 7},
    "dash-in-type": {"action_type": "mo-ve"},
    "surrogate-details": {"details": {"t": "\ud800"}},
    "surrogate-details-key": {"details": {"\udfff": 1}},
    "foreign-action-id": {"action_id": "a2-1-move"},
}


# -- a declared model of the declarative API's tests --


class AgentSnapshot(Record):
    agent_id: Identifier
    step: int
    health: float
    zone: Identifier
    position: Annotated[tuple[float, float] | None, Split("position_x", "position_y")] = None


def snap(step: int, health: float = 1.0, agent_id: str = "a1", zone: str = "z1",
         position=None) -> AgentSnapshot:
    return AgentSnapshot(agent_id=agent_id, step=step, health=health, zone=zone,
                         position=position)


@contextlib.contextmanager
def tls_redis(directory: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server of our own serving TLS only, on a free loopback port, with a
    self-signed certificate for 127.0.0.1 made in ``directory``: ``(port, certificate)``.
    Skips the test without openssl, redis-server, or TLS in the binary."""
    import pytest

    from agentmem.servers.local import find_binary, free_port

    binary = find_binary("redis")
    if shutil.which("openssl") is None or binary is None:
        pytest.skip("no openssl or redis-server to serve TLS")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with redis.Redis(port=port, ssl=True, ssl_ca_certs=str(cert)) as ok:
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert ok.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None:
                        pytest.skip("this redis-server was built without TLS")
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        yield port, cert
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def restartable(directory: Path) -> Iterator[Any]:
    """A server of our own (redis-server, else valkey) that a test may ``stop()`` and
    ``start()`` again on its port, empty (it keeps nothing on disk). Skips without one."""
    import pytest

    from agentmem.servers.local import LocalServer, find_binary

    kind = "redis" if find_binary("redis") is not None else "valkey"
    if find_binary(kind) is None:  # type: ignore[arg-type]
        pytest.skip("no redis-server or valkey-server binary")
    server = LocalServer(kind, directory=directory / "volatile").start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()
