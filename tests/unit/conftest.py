"""tests/unit runs without any server: a unit test that asks for a server fixture is an
error at collection, so `pytest tests/unit` stays a few seconds with nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

SERVER_FIXTURES = frozenset({"server", "r", "rtext", "mem", "connect", "amem", "counted"})
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = [item.nodeid for item in items
             if Path(str(item.path)).resolve().is_relative_to(HERE)
             and SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if wrong:
        raise pytest.UsageError(
            "unit tests use no server; move these to tests/integration: " + ", ".join(wrong))
