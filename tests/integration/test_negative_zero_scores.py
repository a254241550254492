"""Scores 0 and -0 are one score: the reads that page a sorted index by score
(``zrange_fetch.lua``, ``page.lua``, the walk of ``set_sorted_fetch.lua``) compare
scores as numbers, not as the text the server writes them as.

A reward or a declared score of ``-0.0`` is stored as ``-0``, except in a small
sorted set (a listpack holds it as the integer 0) and in a ``ZINTER`` reply (``0``):
one index then holds members of score ``0`` and of score ``-0``, which the server
orders as ties (by member). Comparing the text, the walks counted too few ties and
read the same members again: ``high_reward`` returned duplicates (and, without a
limit, never ended), pages repeated members or never reached the last page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import agentmem
from agentmem import Action, Identifier, Record, SetIndex, SortedIndex, declare

N = 400


def _actions(mem: agentmem.Memory) -> list[Action]:
    return mem.actions.add_many([
        Action(agent_id="a1", simulation_id="s1", step_number=i, action_type="move",
               action_target_id="t1", reward=(0.0, -0.0)[i % 2]) for i in range(N)])


def _pages(fetch: Callable[[str | None, int], Any], size: int) -> list[str]:
    got: list[str] = []
    cursor = None
    for _ in range(3 * N):  # more pages than a correct walk needs: a loop fails, not hangs
        page = fetch(cursor, size)
        got += [x.action_id if isinstance(x, Action) else x.note_id for x in page.items]
        cursor = page.cursor
        if cursor is None:
            return got
    raise AssertionError(f"no last page after {3 * N} pages of {size}")


def test_high_reward_with_rewards_0_and_minus_0(mem: agentmem.Memory) -> None:
    stored = _actions(mem)
    want = sorted((a.action_id for a in stored), key=str.encode, reverse=True)
    got = [a.action_id for a in mem.actions.high_reward("a1", -1.0, limit=N)]
    assert got == want  # ties by action id descending, each once
    for size in (7, 300):
        assert _pages(lambda c, s: mem.actions.page("high_reward", "a1", min_reward=-1.0,
                                                    cursor=c, size=s), size) == want


class Note(Record):
    note_id: str
    agent_id: Identifier
    score: float
    tag: str


NOTES = declare(
    Note, key="agent:{agent_id}:note:{note_id}", id="note_id",
    indexes=[SortedIndex("by_score", "agent:{agent_id}:note:scores", score="score"),
             SetIndex("by_tag", "agent:{agent_id}:note:tag:{tag}")])


def test_members_pages_with_scores_0_and_minus_0(mem: agentmem.Memory) -> None:
    """300 ``old`` notes scored -0.0 below 3,000 others: pages walk the sorted index,
    then sort the set in the server (``ZINTER`` writes ``0``), then walk again."""
    repo = mem.repository(NOTES)
    repo.add_many([Note(note_id=f"n{i}", agent_id="a", score=-0.0 if i < 300 else float(i),
                        tag="old" if i < 300 else "new") for i in range(3300)])
    want = [n.note_id for n in repo.members("by_tag", order_by="by_score", agent_id="a",
                                            tag="old")]
    assert want == sorted((f"n{i}" for i in range(300)), key=str.encode, reverse=True)
    limited = repo.members("by_tag", order_by="by_score", limit=200, agent_id="a", tag="old")
    assert [n.note_id for n in limited] == want[:200]
    for size in (1, 10, 129):
        assert _pages(lambda c, s: repo.page("members", "by_tag", order_by="by_score",
                                             cursor=c, size=s, agent_id="a", tag="old"),
                      size) == want
