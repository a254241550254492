"""``relative`` and the relative index after an entry left it (a delete, a move to IM,
an update), against real Redis and Valkey, on every layout.

The relative index must hold the newest ``relative_index_size`` entries of the agent's
timeline, in the timeline's order (ties by action id), whatever left it: a delete or a
move of one of them refills it from the timeline in the same script. Before that, the
index kept one entry fewer, a later write of an older step entered it (no trim was
needed) and ``relative`` answered that action for a position whose action is another.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.tiers.maintenance import Tiers

SIM = "s"
LAYOUTS = [1, 2, 3, 4]


def record(mem: agentmem.Memory, step: int, kind: str = "move", agent: str = "a") -> str:
    return mem.actions.record(agent_id=agent, simulation_id=SIM, step_number=step,
                              action_type=kind).action_id


def oracle(mem: agentmem.Memory, agent: str = "a") -> list[str]:
    """The agent's STM timeline, newest first (the order ``relative`` counts in)."""
    tl = [a.action_id for a in mem.actions.timeline(agent, newest_first=True)]
    assert tl == [a.action_id for a in mem.actions.recent(agent, n=len(tl) + 5)]
    return tl


def index(mem: agentmem.Memory, r: redis.Redis, agent: str = "a") -> list[str]:
    key = mem.actions.layout.key("relative_index", agent_id=agent)
    return [m.decode() for m in r.zrevrange(key, 0, -1)]


def check(mem: agentmem.Memory, r: redis.Redis, size: int, agent: str = "a") -> None:
    """The index is the newest ``size`` of the timeline, and every ``relative(-k)``, k in
    0 .. size + 2, is the k-th entry of the timeline (None past its end)."""
    tl = oracle(mem, agent)
    assert index(mem, r, agent) == tl[:size]
    for k in range(size + 3):
        got = mem.actions.relative(agent, -k)
        assert (got.action_id if got else None) == (tl[k] if k < len(tl) else None), k


def remove_delete(mem: agentmem.Memory, ids: list[str]) -> None:
    for i in ids:
        assert mem.actions.delete(i, agent_id="a")


def remove_move(mem: agentmem.Memory, ids: list[str]) -> None:
    assert sorted(Tiers(mem).transition("a", ids)) == sorted(ids)


REMOVALS: dict[str, Callable[[agentmem.Memory, list[str]], None]] = {
    "delete": remove_delete, "transition": remove_move}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("how", sorted(REMOVALS))
def test_newest_removed_then_older_step_written(server, r, layout, how):
    """The review's case: steps 0..20, the newest removed, then step 0 written again
    (another type: a renumbered id ``a-0-eat.r1``, a tie with ``a-0-move``)."""
    with agentmem.connect(server.url, layout_version=layout) as mem:
        for step in range(21):
            record(mem, step)
        REMOVALS[how](mem, ["a-20-move"])
        check(mem, r, 20)
        late = record(mem, 0, "eat")
        tl = oracle(mem)
        assert tl[19] == "a-0-move"
        assert late in tl[20:]
        assert mem.actions.relative("a", -19).action_id == "a-0-move"
        check(mem, r, 20)


@pytest.mark.parametrize("layout", [2, 3, 4])
@pytest.mark.parametrize("how", sorted(REMOVALS))
def test_several_removed_ties_and_a_small_index(server, r, layout, how):
    """Several entries of the index and one older removed at once, steps with several
    actions (ties ordered by id, as the write's trim orders them), an index of 5."""
    size = 5
    with agentmem.connect(server.url, layout_version=layout, relative_index_size=size) as mem:
        for step in range(8):
            for kind in ("move", "eat", "look"):
                record(mem, step, kind)
        check(mem, r, size)
        REMOVALS[how](mem, ["a-7-look", "a-7-eat", "a-6-move", "a-1-eat"])
        check(mem, r, size)
        for step, kind in ((2, "rest"), (6, "zap"), (5, "aaa"), (0, "move")):
            record(mem, step, kind)
            check(mem, r, size)
        REMOVALS[how](mem, oracle(mem)[:size])  # the whole index
        check(mem, r, size)


@pytest.mark.parametrize("layout", [2, 4])
def test_removed_until_empty(server, r, layout):
    """Deletes and moves down to an empty timeline: the index follows it."""
    with agentmem.connect(server.url, layout_version=layout, relative_index_size=3) as mem:
        ids = [record(mem, step) for step in range(6)]
        for n, i in enumerate(reversed(ids)):
            (remove_delete if n % 2 else remove_move)(mem, [i])
            check(mem, r, 3)
        assert index(mem, r) == []
        assert mem.actions.relative("a", 0) is None


@pytest.mark.parametrize("layout", [2, 3, 4])
def test_update_after_removal(server, r, layout):
    """An update of an action of the index, and of one older than it, keeps it."""
    with agentmem.connect(server.url, layout_version=layout, relative_index_size=4) as mem:
        for step in range(8):
            record(mem, step)
        remove_delete(mem, ["a-7-move"])
        for step in (6, 1):
            mem.actions.update(Action(action_id=f"a-{step}-move", agent_id="a",
                                      simulation_id=SIM, step_number=step,
                                      action_type="move", reward=1.0))
            check(mem, r, 4)
        record(mem, 0, "eat")
        check(mem, r, 4)


@pytest.mark.parametrize("layout", [2, 3, 4])
def test_index_left_wrong_by_an_older_version_is_not_trusted(server, r, layout):
    """An index a delete left short without a refill, then entered by an older step (as
    agentmem before this fix left it): ``relative`` answers from the timeline."""
    with agentmem.connect(server.url, layout_version=layout) as mem:
        for step in range(21):
            record(mem, step)
        key = mem.actions.layout.key("relative_index", agent_id="a")
        tkey = mem.actions.layout.key("timeline", agent_id="a")
        pre, suf = mem.actions.layout.record_key_parts("action", agent_id="a")
        r.delete(f"{pre}a-20-move{suf}")
        r.zrem(key, "a-20-move")
        r.zrem(tkey, "a-20-move")
        late = record(mem, 0, "eat")
        assert late in index(mem, r)
        assert "a-0-move" not in index(mem, r)
        tl = oracle(mem)
        for k in range(23):
            got = mem.actions.relative("a", -k)
            assert (got.action_id if got else None) == (tl[k] if k < len(tl) else None), k


@pytest.mark.parametrize("layout", [2, 3, 4])
def test_repair_of_expired_actions_refills(server, r, layout):
    """``integrity.repair`` removes the entries of hashes that expired from the timeline
    and the relative index; the index gets the timeline's next entries back."""
    from agentmem.integrity import repair

    with agentmem.connect(server.url, layout_version=layout, relative_index_size=6) as mem:
        for step in range(10):
            record(mem, step)
        pre, suf = mem.actions.layout.record_key_parts("action", agent_id="a")
        r.delete(f"{pre}a-9-move{suf}", f"{pre}a-7-move{suf}")  # as their TTL would
        repair(mem)
        check(mem, r, 6)
        record(mem, 0, "eat")
        check(mem, r, 6)
