"""The parts of test_refusals.py that need no server (moved from tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmem import Action
from agentmem.errors import BackendError, Refused, Unavailable
from agentmem.servers.local import LocalServer, find_binary

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


def test_refused_is_a_backend_error_but_not_a_connection_error() -> None:
    assert issubclass(Refused, BackendError)
    assert not issubclass(Refused, ConnectionError)
    assert issubclass(Unavailable, ConnectionError)
