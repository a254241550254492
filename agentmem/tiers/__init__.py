"""Memory tiers: short-term -> intermediate -> archive, within configured bounds.

Owns ``TierPolicy`` and ``Tiers`` (maintenance, transitions, the background
runner) and the reads across the tiers.

May import: ``agentmem.errors``, ``agentmem.config``,
``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository``, ``agentmem.backends``.
"""

from agentmem.tiers.maintenance import (
    DEFAULT_IM_TTL,
    MaintainReport,
    Shapes,
    TierPolicy,
    Tiers,
)

__all__ = ["DEFAULT_IM_TTL", "MaintainReport", "Shapes", "TierPolicy", "Tiers"]
