"""A query of one simulation never answers with another simulation's action (issue 17,
item 7), on real Redis and Valkey.

Agent keys carry no simulation (the specification's layout): once an action has left
memory (evicted, lost, expired from its indices), the same agent in another
simulation may be given its id again. A simulation's own indices (``at_step``,
``simulation_actions``, ``near_at``) still list the old id; they must not resolve it
to the new action.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.tiers.maintenance import TierPolicy, Tiers


def act(sim: str, step: int = 5, **kw: object) -> Action:
    return Action(agent_id="a1", simulation_id=sim, step_number=step, action_type="move",
                  position=(1.0, 2.0), **kw)  # type: ignore[arg-type]


def _forget(r: redis.Redis, action_id: str) -> None:
    """What eviction or data loss leaves: the hash and the agent's indices gone, the
    simulation's indices still listing the id."""
    r.delete(f"agent:a1:action:{action_id}")
    for key in ("timeline", "relative_index", "rewards"):
        r.zrem(f"agent:a1:action:{key}", action_id)
    r.srem("agent:a1:action:types:move", action_id)


def _reads(mem: agentmem.Memory, sim: str) -> dict[str, list[str]]:
    acts = mem.actions
    return {
        "at_step": [a.simulation_id for a in acts.at_step(sim, 5)],
        "simulation_actions": [a.simulation_id for a in acts.simulation_actions(sim)],
        "near_at": [n.record.simulation_id for n in acts.near_at(sim, 1.0, 2.0, 1.0, step=5)],
        "near_at_steps": [n.record.simulation_id
                          for n in acts.near_at(sim, 1.0, 2.0, 1.0, start=0, end=9)],
    }


def test_an_id_given_again_after_loss_is_not_the_old_simulations_action(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    first = mem.actions.add(act("s1"))
    _forget(r, first.action_id)
    second = mem.actions.add(act("s2"))
    assert second.action_id == first.action_id  # the id was free again in Redis
    assert _reads(mem, "s1") == {"at_step": [], "simulation_actions": [], "near_at": [],
                                 "near_at_steps": []}
    assert _reads(mem, "s2") == {"at_step": ["s2"], "simulation_actions": ["s2"],
                                 "near_at": ["s2"], "near_at_steps": ["s2"]}


def test_after_eviction_by_the_tiers(connect: Callable[..., agentmem.Memory]) -> None:
    mem = connect(ttl=None)
    mem.actions.add_many([act("s1", step) for step in range(1, 6)])
    report = Tiers(mem, TierPolicy(stm_steps=1, im_capacity=1)).maintain(now_step=20)
    assert report.evicted >= 1
    mem.actions.add(act("s2", 1))  # a1-1-move: evicted from s1's memory, given again
    assert [a.simulation_id for a in mem.actions.at_step("s2", 1)] == ["s2"]
    assert all(a.simulation_id == "s1" for a in mem.actions.simulation_actions("s1"))
    assert mem.actions.at_step("s1", 1) == []


@pytest.mark.parametrize("step", [None, 5])
def test_the_unfiltered_reads_of_the_agent_still_see_every_simulation(
        mem: agentmem.Memory, r: redis.Redis, step: int | None) -> None:
    """Agent-level reads are not scoped to a simulation (the specification's keys):
    the filter applies to simulation-level indices only."""
    mem.actions.add(act("s1"))
    mem.actions.add(act("s2"))
    got = mem.actions.by_type("a1", "move")
    assert sorted(a.simulation_id for a in got) == ["s1", "s2"]
