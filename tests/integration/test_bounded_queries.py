"""Queries with a limit do work bounded by the limit, not by the index (issue 17,
item 6), and answer exactly what the full sort answers; on real Redis and Valkey.

``by_type``, ``by_target`` and ``successful_interactions`` read a set index
ordered by a sorted one (``set_sorted_fetch.lua``). With a limit, the script walks
the sorted index from the top and keeps the set's members; it sorts the whole set
only when that is cheaper (the set is small, or its members are the oldest). Which
way it went is visible in the server's command statistics (``SMEMBERS`` is the
sort), which the tests read; the answers are compared with a reference computed
here from every action.
"""

from __future__ import annotations

import random

import pytest
import redis

import agentmem
from agentmem import Action


def _calls(r: redis.Redis, name: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{name}")
    return int(stats["calls"]) if stats else 0


def _ids(actions: list[Action]) -> list[str]:
    return [a.action_id for a in actions]


def _newest_first(actions: list[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: (a.step_number, a.action_id.encode()), reverse=True)


@pytest.fixture
def stored(mem: agentmem.Memory) -> list[Action]:
    rng = random.Random(7)
    kinds = ["move"] * 6 + ["eat"] * 3 + ["share"]
    acts = [Action(agent_id="a1", simulation_id="s1", step_number=step // 2,
                   action_type=rng.choice(kinds), action_target_id=rng.choice(["t1", "t2"]),
                   reward=rng.choice([None, -1.0, 0.0, 0.5, 2.0]))
            for step in range(3000)]
    return mem.actions.add_many(acts)


@pytest.mark.parametrize("limit", [1, 3, 10, 100, 999, 5000, None])
def test_by_type_and_by_target_answer_what_the_full_sort_answers(
        mem: agentmem.Memory, stored: list[Action], limit: int | None) -> None:
    for kind in ("move", "eat", "share"):
        want = _newest_first([a for a in stored if a.action_type == kind])[:limit]
        assert _ids(mem.actions.by_type("a1", kind, limit=limit)) == _ids(want)
    for target in ("t1", "t2"):
        want = _newest_first([a for a in stored if a.action_target_id == target])[:limit]
        assert _ids(mem.actions.by_target("a1", target, limit=limit)) == _ids(want)


@pytest.mark.parametrize("limit", [1, 3, 50, None])
def test_successful_interactions_answer_what_the_full_sort_answers(
        mem: agentmem.Memory, stored: list[Action], limit: int | None) -> None:
    for target in ("t1", "t2"):
        hits = [a for a in stored if a.action_target_id == target and (a.reward or 0) > 0]
        want = sorted(hits, key=lambda a: (a.reward, a.action_id.encode()), reverse=True)
        got = mem.actions.successful_interactions("a1", target, limit=limit)
        assert _ids(got) == _ids(want[:limit])


def test_a_common_type_is_answered_without_sorting_the_set(
        mem: agentmem.Memory, r: redis.Redis, stored: list[Action]) -> None:
    r.config_resetstat()
    got = mem.actions.by_type("a1", "move", limit=10)
    assert len(got) == 10
    assert _calls(r, "smembers") == 0
    assert _calls(r, "zrange") == 1  # one page of the timeline held ten moves


def test_members_that_are_the_oldest_are_sorted_instead(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    old = [Action(agent_id="a1", simulation_id="s1", step_number=s, action_type="rare")
           for s in range(200)]
    new = [Action(agent_id="a1", simulation_id="s1", step_number=s, action_type="move")
           for s in range(200, 2200)]
    mem.actions.add_many(old + new)
    r.config_resetstat()
    got = mem.actions.by_type("a1", "rare", limit=5)
    assert [a.step_number for a in got] == [199, 198, 197, 196, 195]
    assert _calls(r, "zinter") == 1  # the walk gave up after 200 members: a sort
    assert _calls(r, "smembers") == 0  # in the server (ZINTER), not scored here


def test_members_without_a_timeline_entry_still_come_last(
        mem: agentmem.Memory, r: redis.Redis, stored: list[Action]) -> None:
    """A member the sorted index lacks (an index left inconsistent) is answered as the
    sort answers it: after every scored member."""
    eats = _newest_first([a for a in stored if a.action_type == "eat"])
    lost = sorted((a.action_id for a in eats[:3]), key=str.encode, reverse=True)
    r.zrem("agent:a1:action:timeline", *lost)
    for limit in (len(eats) - 1, len(eats)):  # the walk runs out, then the sort
        got = mem.actions.by_type("a1", "eat", limit=limit)
        assert _ids(got) == (_ids(eats[3:]) + lost)[:limit]


@pytest.mark.parametrize("newest_first", [False, True])
def test_timeline_pages_by_score_past_ties_and_expired_hashes(
        mem: agentmem.Memory, r: redis.Redis, newest_first: bool) -> None:
    """The timeline read by score pages with a score cursor (256 a page): 600 actions of
    one step (ties across pages), then 900 more of which 800 have expired."""
    tied = mem.actions.add_many([Action(agent_id="a2", simulation_id="s1", step_number=5,
                                        action_type="move") for _ in range(600)])
    more = mem.actions.add_many([Action(agent_id="a2", simulation_id="s1", step_number=6 + i,
                                        action_type="eat") for i in range(900)])
    gone = more[:800] if not newest_first else more[100:]
    r.delete(*[f"agent:a2:action:{a.action_id}" for a in gone])
    live = [a for a in tied + more if a not in gone]
    want = sorted(live, key=lambda a: (a.step_number, a.action_id.encode()),
                  reverse=newest_first)
    got = mem.actions.timeline("a2", newest_first=newest_first)
    assert _ids(got) == _ids(want)
    assert _ids(mem.actions.timeline("a2", 6, None, newest_first=newest_first,
                                     limit=10)) == _ids([a for a in want
                                                         if a.step_number >= 6][:10])


def _mixed(mem: agentmem.Memory) -> list[Action]:
    """300 ``rare`` actions that are the oldest, 3000 ``move`` after them with six more
    ``rare`` among the newest: a set larger than a page walk is worth, mostly old."""
    acts = [Action(agent_id="a1", simulation_id="s1", step_number=s, action_type="rare")
            for s in range(300)]
    acts += [Action(agent_id="a1", simulation_id="s1", step_number=s,
                    action_type="rare" if s % 500 == 0 else "move")
             for s in range(300, 3300)]
    return mem.actions.add_many(acts)


def test_a_sparse_old_set_is_sorted_in_the_server_without_a_walk(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """by_type(limit) on a set whose walk would be longer than the set (limit x
    timeline / set >= set) sorts it at once, with ZINTER, and answers the same."""
    old = [Action(agent_id="a1", simulation_id="s1", step_number=s, action_type="rare")
           for s in range(200)]
    new = [Action(agent_id="a1", simulation_id="s1", step_number=s, action_type="move")
           for s in range(200, 20200)]
    mem.actions.add_many(old + new)
    r.config_resetstat()
    got = mem.actions.by_type("a1", "rare", limit=5)
    assert [a.step_number for a in got] == [199, 198, 197, 196, 195]
    assert _calls(r, "zrange") == 0  # no walk
    assert _calls(r, "zinter") == 1


@pytest.mark.parametrize("size", [1, 7, 10, 300, 1000])
def test_pages_of_a_mostly_old_set_equal_the_query(mem: agentmem.Memory, size: int) -> None:
    """page("by_type") over a set of mostly old members: the walk gives the newest
    members, then switches to the sorted set from the last one it gave (or sorts at
    once); every page together is the query's answer, in order, without repeats."""
    stored = _mixed(mem)
    want = _ids(_newest_first([a for a in stored if a.action_type == "rare"]))
    assert _ids(mem.actions.by_type("a1", "rare")) == want
    got: list[str] = []
    cursor = None
    while True:
        page = mem.actions.page("by_type", "a1", "rare", cursor=cursor, size=size)
        assert len(page.items) <= size
        got += _ids(page.items)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert got == want


def test_a_page_of_a_mostly_old_set_stops_walking_at_the_set_size(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """The first page of 10 walks the timeline until it has visited as many entries as
    the set holds (306), then sorts the set once: about 3 walk pages, not 26."""
    _mixed(mem)
    r.config_resetstat()
    page = mem.actions.page("by_type", "a1", "rare", size=10)
    assert [a.step_number for a in page.items] == [3000, 2500, 2000, 1500, 1000, 500,
                                                   299, 298, 297, 296]
    assert _calls(r, "zinter") == 1
    assert 0 < _calls(r, "zrange") <= 3  # 128 entries a page: 384 >= 306
