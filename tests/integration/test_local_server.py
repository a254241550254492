"""LocalServer (agentmem.servers.local), the server process the embedded default, the
benchmarks and the tests start: a taken port and a Ctrl-C while it starts, with real
server processes and real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmem.servers import local
from agentmem.servers.local import LocalServer, find_binary


@pytest.fixture
def binary() -> str:
    found = find_binary("redis") or find_binary("valkey")
    if found is None:
        pytest.skip("no server binary")
    return found


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a command (whatever the test runner set)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _kind() -> local.Kind:
    return "redis" if find_binary("redis") else "valkey"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_port_taken_before_the_server_binds_is_chosen_again(
        binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The port it chose is taken by another listener before the server binds it: the
    server exits, a new port is chosen, and the server answers there."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    real = local.free_port
    ports = iter([port])
    monkeypatch.setattr(local, "free_port", lambda: next(ports, None) or real())
    try:
        with LocalServer(_kind()) as server:
            assert server.port != port
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                assert s.recv(16) == b"+PONG\r\n"
    finally:
        taken.close()


def test_a_given_port_that_is_taken_is_an_error(binary: str) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(local.Unavailable, match="exited"):
            LocalServer(_kind(), port=taken.getsockname()[1]).start()
    finally:
        taken.close()


def test_a_ctrl_c_inside_popen_stops_the_server_it_started(
        binary: str, monkeypatch: pytest.MonkeyPatch, sigint_raises: None) -> None:
    """SIGINT arrives after the server's exec and before Popen returns (the window a
    Ctrl-C at `agentmem demo` can hit): start() raises KeyboardInterrupt and the server
    process it started is stopped, not left running with no one holding it."""
    started: list[int] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real(*args, **kwargs)
        started.append(process.pid)
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, inside the call
        return process

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    server = LocalServer(_kind())
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert started
    assert not _alive(started[0]), "the server was left running"
    assert server.process is None
    server.close()


def test_signals_held_are_handled_when_the_block_ends(sigint_raises: None) -> None:
    reached: list[bool] = []

    def block() -> None:
        with local._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(True)  # not interrupted inside the block

    with pytest.raises(KeyboardInterrupt):
        block()
    assert reached == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_server_that_exits_for_another_reason_is_started_once(
        binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration the server refuses: the error says what its log said, and no
    other port is tried (only a port in use is)."""
    config = tmp_path / "bad.conf"
    config.write_text("no-such-directive yes\n")
    started: list[int] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real(*args, **kwargs)
        started.append(process.pid)
        return process

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    with pytest.raises(local.ServerExited, match=r"no-such-directive|Bad directive") as info:
        LocalServer(_kind(), directory=tmp_path / "srv", config_file=config).start()
    assert not info.value.port_taken
    assert len(started) == 1


def test_every_signal_held_is_handled_and_every_handler_put_back() -> None:
    """SIGINT and SIGTERM both arrive inside the block: both handlers run when it ends,
    in order, the first one's exception is raised, and both handlers are in place
    again (one raising does not keep the other from being put back)."""
    ran: list[int] = []

    def on_int(signum: int, frame: Any) -> None:
        ran.append(signum)
        raise KeyboardInterrupt

    def on_term(signum: int, frame: Any) -> None:
        ran.append(signum)

    before = (signal.signal(signal.SIGINT, on_int), signal.signal(signal.SIGTERM, on_term))
    try:
        def block() -> None:
            with local._signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)

        with pytest.raises(KeyboardInterrupt):
            block()
        assert ran == [signal.SIGINT, signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is on_int
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_a_folder_where_stderr_cannot_be_written_still_starts(
        binary: str, tmp_path: Path) -> None:
    """The file the server's standard error goes to cannot be created (here a folder
    holds its name): the server starts anyway, its standard error discarded."""
    kind = _kind()
    (tmp_path / "srv" / f"{kind}.stderr").mkdir(parents=True)
    with LocalServer(kind, directory=tmp_path / "srv") as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16) == b"+PONG\r\n"
