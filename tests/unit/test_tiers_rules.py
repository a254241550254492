"""The parts of test_tiers.py that need no server (moved from tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentmem import Action, ConfigError
from agentmem.backends.sql import Archive, open_archive
from agentmem.tiers.maintenance import TierPolicy

SIM = "sim_t"


def act(agent: str = "a1", step: int = 1, kind: str = "move", **kw: Any) -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=step, action_type=kind, **kw)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with open_archive(tmp_path / "archive.db") as a:
        yield a


def keys(r: redis.Redis) -> set[str]:
    return {k.decode() for k in r.scan_iter(count=1000)}


def test_policy_is_checked() -> None:
    for bad in ({"stm_steps": 0}, {"stm_capacity": -1}, {"im_ttl": 2**40},
                {"importance_weight": -1}, {"stm_seconds": float("nan")},
                {"importance": 3}):
        with pytest.raises(ConfigError):
            TierPolicy(**bad)


