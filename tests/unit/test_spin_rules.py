"""The parts of test_spin.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import pytest

from agentmem.backends import spin
from agentmem.backends.spin import AUTO_SPIN_US, resolve_spin
from agentmem.servers.local import LocalServer, find_binary

AUTO = AUTO_SPIN_US / 1e6

# a script that keeps the server busy for about 400 ms, so that replies come late


def test_auto_polls_for_a_unix_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 2)
    assert resolve_spin(None, host=None, unix=True) == AUTO


def test_auto_does_not_poll_with_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 1)
    assert resolve_spin(None, host="127.0.0.1", unix=False) == 0.0
    assert resolve_spin(None, host=None, unix=True) == 0.0


@pytest.fixture
def local() -> LocalServer:
    if find_binary("redis") is None and find_binary("valkey") is None:
        pytest.skip("no server binary")
    kind = "redis" if find_binary("redis") is not None else "valkey"
    return LocalServer(kind)  # type: ignore[arg-type]


