"""Reads across the memory tiers: an agent's history as one sequence.

``history``, ``recent`` and ``relative`` read the short-term (STM) and the
intermediate (IM) timelines together, in one round trip, ordered by step and
then id as the STM reads are: STM entries come back as :class:`Action`, IM
entries as :class:`IMAction` (the compressed form). ``find`` looks an action up
by id in STM, then IM, then the SQL archive, which holds every action that left
Redis. See ``docs/tiers.md``.
"""

from __future__ import annotations

from agentmem.backends import sqlreads
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.errors import InvalidInput
from agentmem.model.records import Action, IMAction
from agentmem.plans.keyspace import check_part
from agentmem.plans.plan import check_limit

__all__ = ["find", "history", "recent", "relative"]


def history(memory: Memory, agent_id: str, start: int | None = None,
            end: int | None = None, *, newest_first: bool = False,
            limit: int | None = None) -> list[Action | IMAction]:
    """The agent's actions with ``start <= step <= end`` in STM and IM, oldest first
    (``memory.actions.history``; the asyncio repository has it too)."""
    return memory.actions.history(agent_id, start, end, newest_first=newest_first,
                                  limit=limit)


def recent(memory: Memory, agent_id: str, n: int = 10) -> list[Action | IMAction]:
    """The ``n`` newest actions across STM and IM, newest first."""
    return history(memory, agent_id, newest_first=True, limit=check_limit(n))


def relative(memory: Memory, agent_id: str, position: int = 0) -> Action | IMAction | None:
    """The action at a relative position across the tiers: 0 the newest, -k the k-th before."""
    if isinstance(position, bool) or not isinstance(position, int) or position > 0:
        raise InvalidInput(f"relative position must be an int <= 0, got {position!r}")
    found = history(memory, agent_id, newest_first=True, limit=1 - position)
    return found[-position] if len(found) > -position else None


def find(memory: Memory, agent_id: str, action_id: str, archive: Archive | None = None
         ) -> Action | IMAction | None:
    """The action ``action_id``: from STM, else IM, else the archive (full form)."""
    check_part("action_id", action_id)
    got = memory.actions.get(action_id, agent_id=agent_id)
    if got is not None:
        return got
    im = memory.im_actions.get(action_id, agent_id=agent_id)
    if im is not None:
        return im
    if archive is not None:
        return sqlreads.get(archive, agent_id, action_id)
    return None
