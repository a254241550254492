"""The parts of test_refusals.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import pytest

from agentmem.errors import BackendError, Refused, Unavailable
from agentmem.servers.local import find_binary

pytestmark = pytest.mark.skipif(find_binary("redis") is None, reason="no redis-server on PATH")


def test_refused_is_a_backend_error_but_not_a_connection_error() -> None:
    assert issubclass(Refused, BackendError)
    assert not issubclass(Refused, ConnectionError)
    assert issubclass(Unavailable, ConnectionError)
