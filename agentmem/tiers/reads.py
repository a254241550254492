"""Reads across the memory tiers: an agent's history as one sequence.

``history``, ``recent`` and ``relative`` read the short-term (STM) and the
intermediate (IM) timelines together, in one round trip, ordered by step and
then id as the STM reads are: STM entries come back as :class:`Action`, IM
entries as :class:`IMAction` (the compressed form). ``find`` looks an action up
by id in STM, then IM, then the SQL archive, which holds every action that left
Redis. See ``docs/tiers.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from agentmem.backends import sqlreads
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.errors import InvalidInput
from agentmem.model.records import Action, IMAction
from agentmem.plans.keyspace import check_part
from agentmem.plans.paging import MAX_PAGE
from agentmem.plans.plan import check_limit, command, single

__all__ = ["by_target", "by_type", "find", "high_reward", "history", "known", "recent",
           "relative"]


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


def find(memory: Memory, agent_id: str, action_id: str, archive: Archive | None = None,
         *, simulation_id: str | None = None) -> Action | IMAction | None:
    """The action ``action_id``: from STM, else IM, else the archive (full form).

    Redis holds one action per (agent, id); the archive one per (simulation, agent,
    id). With ``simulation_id``, only that simulation's action is returned (an STM or
    IM action of another simulation is passed over); without it, the one in Redis,
    else the one archived last (:func:`agentmem.backends.sqlreads.get`)."""
    check_part("action_id", action_id)
    if simulation_id is not None:
        check_part("simulation_id", simulation_id)

    def wanted(a: Action | IMAction | None) -> bool:
        return a is not None and (simulation_id is None or a.simulation_id == simulation_id)

    got = memory.actions.get(action_id, agent_id=agent_id)
    if got is not None and wanted(got):
        return got
    im = memory.im_actions.get(action_id, agent_id=agent_id)
    if im is not None and wanted(im):
        return im
    if archive is not None:
        return sqlreads.get(archive, agent_id, action_id, simulation_id=simulation_id)
    return None


def known(memory: Memory, agent_id: str) -> bool:
    """Whether the agent has anything in STM or IM (its timelines exist; one round trip)."""
    lay = memory.actions.layout
    keys = [lay.key("timeline", agent_id=agent_id), lay.key("im_timeline", agent_id=agent_id)]
    return bool(memory.runner.run(single(command("EXISTS", *keys), int)))


def _limited(memory: Memory, agent_id: str, keep: Callable[[Action | IMAction], bool],
             limit: int | None, stm: Callable[[int], list[Action]]
             ) -> list[Action | IMAction]:
    """``keep``'s actions of both tiers, newest first: with a limit, ``stm(limit)`` (STM's
    own bounded query for them) and IM's (:func:`_newest`), else the whole history."""
    if limit is None:
        return _where(memory, agent_id, keep, None)
    n = check_limit(limit)
    return _newest(memory, agent_id, stm(n), keep, n)


IM_PAGE = 256
"""IM entries read per round trip while looking for a limited read's matches."""


def _newest(memory: Memory, agent_id: str, stm: list[Action],
            keep: Callable[[Action | IMAction], bool], n: int) -> list[Action | IMAction]:
    """The ``n`` newest of ``stm`` (STM's matches, at most ``n``) and IM's matches: IM
    is read newest first, a page of at least ``IM_PAGE`` (at most ``MAX_PAGE``) entries
    per round trip, until ``n`` match or it ends, so the work follows ``n`` and where
    the matches are, not the agent's whole history. Newest: by step, then id, as
    :func:`history` orders. An action moved from STM to IM between the reads is taken
    once."""
    im: list[IMAction] = []
    cursor: str | None = None
    while len(im) < n:
        page = memory.im_actions.page("range", "im_timeline", newest_first=True,
                                      cursor=cursor, size=min(max(IM_PAGE, n), MAX_PAGE),
                                      agent_id=agent_id)
        im.extend(a for a in page.items if keep(a))
        cursor = page.cursor
        if cursor is None:
            break
    seen = {a.action_id for a in stm}
    both: list[Action | IMAction] = [*stm, *(a for a in im[:n] if a.action_id not in seen)]
    both.sort(key=lambda a: (a.step_number, a.action_id or ""), reverse=True)
    return both[:n]


def _where(memory: Memory, agent_id: str, keep: Callable[[Action | IMAction], bool],
           limit: int | None) -> list[Action | IMAction]:
    found = [a for a in history(memory, agent_id, newest_first=True) if keep(a)]
    return found if limit is None else found[:check_limit(limit)]


def by_type(memory: Memory, agent_id: str, action_type: str, limit: int | None = None
            ) -> list[Action | IMAction]:
    """The agent's actions of ``action_type`` in STM and IM, newest first (the IM form
    keeps the type, the target and the reward, so these three reads span both tiers).
    With a ``limit``: STM's ``by_type`` (bounded by it), then IM newest first in pages
    until ``limit`` match (see :func:`_newest`)."""
    return _limited(memory, agent_id, lambda a: a.action_type == action_type, limit,
                    lambda n: memory.actions.by_type(agent_id, action_type, n))


def by_target(memory: Memory, agent_id: str, target_id: str, limit: int | None = None
              ) -> list[Action | IMAction]:
    """The agent's actions aimed at ``target_id`` in STM and IM, newest first (with a
    ``limit``, as :func:`by_type`)."""
    return _limited(memory, agent_id, lambda a: a.action_target_id == target_id, limit,
                    lambda n: memory.actions.by_target(agent_id, target_id, n))


def high_reward(memory: Memory, agent_id: str, min_reward: float, limit: int | None = None
                ) -> list[Action | IMAction]:
    """The agent's actions with ``reward >= min_reward`` in STM and IM, best first, equal
    rewards by id, highest first, as STM's rewards index orders them (IM rewards have 6
    significant digits). With a ``limit``: STM's own ``high_reward`` (bounded by it) and
    IM's matches; IM has no reward index, so its timeline is read whole, in pages."""
    if isinstance(min_reward, bool) or not isinstance(min_reward, (int, float)) or \
            math.isnan(min_reward):
        raise InvalidInput(f"min_reward must be a number, got {min_reward!r}")

    def keep(a: Action | IMAction) -> bool:
        return a.reward is not None and a.reward >= min_reward

    if limit is not None and check_limit(limit) == 0:
        return []
    if limit is None:
        found = _where(memory, agent_id, keep, None)
    else:
        n = check_limit(limit)
        stm: list[Action | IMAction] = list(memory.actions.high_reward(agent_id, min_reward,
                                                                       n))
        seen = {a.action_id for a in stm}
        found = [*stm, *(a for a in _im_all(memory, agent_id) if keep(a)
                         and a.action_id not in seen)]
    found.sort(key=lambda a: (a.reward or 0.0, a.action_id or ""), reverse=True)
    return found if limit is None else found[:check_limit(limit)]


def _im_all(memory: Memory, agent_id: str) -> list[IMAction]:
    """Every IM entry of the agent, newest first, in pages of :data:`IM_PAGE`."""
    out: list[IMAction] = []
    cursor: str | None = None
    while True:
        page = memory.im_actions.page("range", "im_timeline", newest_first=True,
                                      cursor=cursor, size=IM_PAGE, agent_id=agent_id)
        out.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            return out
