"""The policy of the memory tiers (window, capacities, importance weights, TTLs) and
what one maintenance did (pure values, checked when made through
:class:`~agentmem.config.TierSettings`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from agentmem.config import DEFAULT_IM_TTL, TierSettings, read
from agentmem.errors import ConfigError, InvalidInput
from agentmem.model.analytics import action_importance
from agentmem.model.records import Action

__all__ = ["DEFAULT_IM_TTL", "MaintainReport", "TierPolicy", "check_positive"]



def check_positive(value: Any, name: str, *, integer: bool = True) -> None:
    if value is None:
        return
    number = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not number or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive {'int' if integer else 'number'} or "
                          f"None, got {value!r}")


@dataclass(frozen=True)
class TierPolicy:
    """How much each agent keeps in each tier, and for how long.

    - ``stm_steps``: STM keeps the actions of the newest ``stm_steps`` steps
      (counted back from ``now_step`` given to ``maintain``, else from the
      agent's newest step); older ones move to IM.
    - ``stm_seconds``: STM keeps actions written less than this long ago.
    - ``stm_capacity`` / ``im_capacity``: at most this many actions per agent
      in the tier after ``maintain`` (pinned actions are exempt and not counted).
    - ``im_ttl``: seconds an IM hash lives without maintenance (``None``: no TTL).
    - ``importance_weight``: when a tier is over capacity, actions leave in the
      order of ``step + importance * importance_weight``, lowest first, ties by
      lower importance, then older id: among actions of the same age the more
      important stay longer; a weight lets importance outlive age.
    - ``importance``: the score function (default: section 7's formula).
    """

    stm_steps: int | None = None
    stm_seconds: float | None = None
    stm_capacity: int | None = None
    im_capacity: int | None = None
    im_ttl: int | None = DEFAULT_IM_TTL
    importance_weight: float = 0.0
    importance: Callable[[Action], float] = action_importance

    def __post_init__(self) -> None:
        read(TierSettings, {f.name: getattr(self, f.name) for f in fields(self)
                            if f.name != "importance"}, env={})
        if not callable(self.importance):
            raise ConfigError("importance must be a callable taking an Action")

    @classmethod
    def from_settings(cls, settings: TierSettings,
                      importance: Callable[[Action], float] = action_importance) -> TierPolicy:
        """The policy of ``settings`` (``maintain_interval`` is not part of it)."""
        return cls(**settings.policy_fields(), importance=importance)


@dataclass
class MaintainReport:
    """What one :meth:`Tiers.maintain` did, summed over agents."""

    agents: int = 0
    to_im: int = 0  # actions moved STM -> IM
    archived: int = 0  # rows the archive inserted on the way
    evicted: int = 0  # IM entries removed (archived before)
    missing: int = 0  # timeline ids whose hash was gone (expired, or another maintain moved it)
    refused: list[str] = field(default_factory=list)  # ids a key of the wrong type kept
    pinned: int = 0  # ids about to move that were pinned meanwhile (left in place)
    changed: int = 0  # updated while being moved (left in STM: the next maintain moves them)
    dry_run: bool = False  # a plan (Tiers.plan): nothing was changed
    moving: dict[str, list[str]] = field(default_factory=dict)
    """A plan only: per agent, the ids that would move STM -> IM (``evicted`` is then the
    number of IM entries that would leave, at most)."""


def _importance_text(value: float) -> str:
    """Importance as stored in IM: 6 significant digits (0.30000000000000004 -> "0.3");
    a retention score needs no more, and the IM entry stays small."""
    return format(value, ".6g")


def _checked_importance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(f"importance must be a number in [0, 1], got {value!r}")
    return float(value)
