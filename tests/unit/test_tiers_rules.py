"""The parts of test_tiers.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import pytest

from agentmem import ConfigError
from agentmem.tiers.maintenance import TierPolicy


def test_policy_is_checked() -> None:
    for bad in ({"stm_steps": 0}, {"stm_capacity": -1}, {"im_ttl": 2**40},
                {"importance_weight": -1}, {"stm_seconds": float("nan")},
                {"importance": 3}):
        with pytest.raises(ConfigError):
            TierPolicy(**bad)


