"""Pure analytics over actions: importance (section 7) and the queries of section 8.

No I/O: these take actions already read and return plain results, so they are
tested on hand-computed cases and reused by the blocking and asyncio repositories.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.model.records import Action

SOCIAL_TYPES = frozenset({"attack", "reproduce", "share"})


def action_importance(action: Action | Mapping[str, Any]) -> float:
    """Importance in [0, 1] for retention decisions, exactly as section 7 computes it.

    Accepts an :class:`Action` or a hash as the specification's code sees it
    (a mapping where absent fields are missing keys).
    """
    if isinstance(action, Action):
        fields: dict[str, Any] = {
            k: v for k, v in (
                ("reward", action.reward), ("action_type", action.action_type),
                ("action_target_id", action.action_target_id),
                ("resources_before", action.resources_before),
                ("resources_after", action.resources_after),
            ) if v is not None
        }
    else:
        fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in action.items()}
    importance = 0.0
    if "reward" in fields:
        importance += min(abs(float(fields["reward"])) * 0.5, 0.5)
    action_type = fields["action_type"]
    if isinstance(action_type, bytes):
        action_type = action_type.decode()
    if action_type in SOCIAL_TYPES:
        importance += 0.3
    if "action_target_id" in fields:
        importance += 0.2
    if "resources_before" in fields and "resources_after" in fields:
        change = abs(float(fields["resources_after"]) - float(fields["resources_before"]))
        if change > 0.2:
            importance += 0.2
    return min(importance, 1.0)


@dataclass(frozen=True)
class Lesson:
    """What past actions of one type teach (section 8.1)."""

    avg_reward: float
    best_action: Action
    action_count: int


def learn(
    past: Sequence[Action],
    position: tuple[float, float] | None = None,
    radius: float = 0.2,
) -> Lesson | None:
    """Average reward and best action among ``past``, preferring those within ``radius``.

    As section 8.1: when a position is given and some actions lie strictly
    within ``radius`` of it, only those count; otherwise all of them do.
    """
    if not past:
        return None
    chosen = list(past)
    if position is not None:
        near = [
            a for a in past
            if a.position is not None
            and math.dist(a.position, position) < radius
        ]
        if near:
            chosen = near
    rewards = [a.reward for a in chosen if a.reward is not None]
    avg = sum(rewards) / len(rewards) if rewards else 0.0
    best = max(chosen, key=lambda a: a.reward if a.reward is not None else -math.inf)
    return Lesson(avg_reward=avg, best_action=best, action_count=len(chosen))


@dataclass(frozen=True)
class SequenceAnalysis:
    """Patterns in an agent's most recent actions (section 8.3), newest first."""

    action_counts: dict[str, int]
    most_common: str | None
    avg_reward: float | None
    cycle_detected: bool
    sequence: list[str]


def analyze_sequence(recent: Sequence[Action]) -> SequenceAnalysis | None:
    """Counts, most common type, average reward and the ABAB cycle rule of section 8.3.

    ``recent`` is newest first. The cycle rule is the specification's: the first
    four types satisfy ``t0 == t2 and t1 == t3``. ``most_common`` breaks ties by
    first appearance (newest first), as ``max`` over an insertion-ordered dict does.
    """
    if not recent:
        return None
    sequence = [a.action_type for a in recent]
    counts = dict(Counter(sequence))
    rewards = [a.reward for a in recent if a.reward is not None]
    cycle = len(sequence) >= 4 and sequence[0] == sequence[2] and sequence[1] == sequence[3]
    return SequenceAnalysis(
        action_counts=counts,
        most_common=max(counts.items(), key=lambda kv: kv[1])[0],
        avg_reward=sum(rewards) / len(rewards) if rewards else None,
        cycle_detected=cycle,
        sequence=sequence,
    )
