"""Each part of the action repository on its own, without a server.

The parts (agentmem.repository: actioncore, agentqueries, simqueries, nearby,
analytics) build plans; building checks the arguments and renders the keys, and
never does I/O. Here the plans are built and their calls inspected, and fed canned
replies where the parse is the point. A runner that fails if anything is sent
proves no part runs a command while building.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentmem.errors import InvalidInput
from agentmem.lua.radius import NEAR
from agentmem.lua.scripts import RELATIVE_FETCH, SET_SORTED_FETCH, SIM_FETCH, ZRANGE_FETCH
from agentmem.lua.tiers import HISTORY
from agentmem.model.records import Action
from agentmem.repository.actioncore import ActionCore
from agentmem.repository.actions import ActionOps, ActionRepository
from agentmem.repository.agentqueries import AgentQueries
from agentmem.repository.analytics import ActionAnalytics
from agentmem.repository.nearby import RadiusSearch
from agentmem.repository.simqueries import SimulationQueries


class NoIO:
    """A runner that refuses to run anything: building a plan must not need one."""

    def run(self, plan: Any) -> Any:
        raise AssertionError("a plan was run while only building")


@pytest.fixture(params=[1, 2], ids=["layout1", "layout2"])
def repo(request: pytest.FixtureRequest) -> ActionRepository:
    return ActionRepository(NoIO(), layout_version=request.param)


def _calls(plan: Any) -> list[Any]:
    return list(plan.calls)


def _argv(call: Any) -> tuple[Any, ...]:
    nkeys = call.args[2]
    return call.args[3 + nkeys:]


def test_the_facade_is_the_parts() -> None:
    for part in (ActionCore, AgentQueries, SimulationQueries, RadiusSearch, ActionAnalytics):
        assert issubclass(ActionOps, part)
    public = {n for n in dir(ActionOps) if not n.startswith("_")}
    assert {"by_type", "at_step", "near", "near_at", "history", "record", "add_many",
            "learn_from_past_actions", "type_counts"} <= public


def test_agent_queries_render_the_agents_keys(repo: ActionRepository) -> None:
    tag = "{a1}" if repo.layout.version == 2 else "a1"
    [call] = _calls(AgentQueries.by_type.build(repo, "a1", "move", 3))
    assert call.script is SET_SORTED_FETCH
    argv = _argv(call)
    assert argv[:2] == (f"agent:{tag}:action:types:move", f"agent:{tag}:action:timeline")
    assert argv[5] == 3  # the limit reaches the script: work bounded by it
    [call] = _calls(AgentQueries.recent.build(repo, "a1", 4))
    assert call.script is ZRANGE_FETCH
    [call] = _calls(AgentQueries.relative.build(repo, "a1", -2))
    assert call.script is RELATIVE_FETCH
    [call] = _calls(AgentQueries.history.build(repo, "a1", 2, 9))
    assert call.script is HISTORY
    assert _calls(AgentQueries.recent.build(repo, "a1", 0)) == []  # nothing to ask


def test_agent_queries_check_their_arguments(repo: ActionRepository) -> None:
    with pytest.raises(InvalidInput):
        AgentQueries.relative.build(repo, "a1", 1)
    with pytest.raises(InvalidInput):
        AgentQueries.by_type.build(repo, "a1", "move", -5)
    with pytest.raises(InvalidInput):
        AgentQueries.recent.build(repo, "a:1", 3)


def test_simulation_queries(repo: ActionRepository) -> None:
    tag = "{s1}" if repo.layout.version == 2 else "s1"
    if repo.layout.version == 1:
        [call] = _calls(SimulationQueries.at_step.build(repo, "s1", 7))
        assert call.script is SIM_FETCH
        assert _argv(call)[0] == f"simulation:{tag}:actions:7"
    plan = SimulationQueries.type_counts.build(repo, "s1")
    [call] = _calls(plan)
    assert call.args == ("HGETALL", f"simulation:{tag}:actions:by_type")
    assert plan.parse([[b"move", b"3", b"eat", b"1"]]) == {"move": 3, "eat": 1}
    plan = SimulationQueries.steps.build(repo, "s1", 2, None)
    assert plan.parse([[b"2", b"5"]]) == [2, 5]


def test_radius_search_checks_and_builds(repo: ActionRepository) -> None:
    repo._cell_state = 2  # the grid cell was checked already: the plan is the search alone
    [call] = _calls(RadiusSearch.near.build(repo, "a1", 1.0, 2.0, 3.0, action_type="move"))
    assert call.script is NEAR
    with pytest.raises(InvalidInput):
        RadiusSearch.near.build(repo, "a1", 1.0, 2.0, -1.0)
    with pytest.raises(InvalidInput):
        RadiusSearch.near_at.build(repo, "s1", 0.0, 0.0, 1.0, step=3, start=1)


def test_analytics_reuse_a_query_plan(repo: ActionRepository) -> None:
    plan = ActionAnalytics.learn_from_past_actions.build(repo, "a1", "move", limit=2)
    [call] = _calls(plan)
    assert call.script is SET_SORTED_FETCH  # by_type's plan, mapped: one round trip
    assert plan.parse([[]]) is None  # no past actions: no lesson


def test_core_checks_records_before_anything_is_sent(repo: ActionRepository) -> None:
    with pytest.raises(InvalidInput, match="must read"):
        repo.check(Action(agent_id="a1", simulation_id="s1", step_number=3,
                          action_type="move", action_id="b2-3-move"))
    with pytest.raises(InvalidInput):
        ActionCore.record.build(repo, agent_id="a1", simulation_id="s1", step_number=-1,
                                action_type="move")
