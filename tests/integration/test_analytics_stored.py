"""Section 7 and 8 analytics over actions stored in real Redis and Valkey (the pure
computations are in tests/unit/test_analytics.py)."""


from __future__ import annotations

import pytest

from agentmem import Action, AgentMemoryMixin

# -- importance --------------------------------------------------------------------


# -- learn -------------------------------------------------------------------------


# -- sequences -----------------------------------------------------------------------


# -- the agent mixin -----------------------------------------------------------------

class Environment:
    def __init__(self, simulation_id: str, time: int) -> None:
        self.simulation_id = simulation_id
        self.time = time


class Agent(AgentMemoryMixin):
    def __init__(self, memory, *, use_memory: bool = True) -> None:
        self.agent_id = "agent7"
        self.environment = Environment("sim42", 12)
        self.resource_level = 33.5
        self.position_x = 1.5
        self.position_y = -2.0
        self.memory = memory
        self.use_memory = use_memory


def test_remember_agent_action_stores_with_the_agent_fields(mem, r):
    agent = Agent(mem.actions)
    action_id = agent.remember_agent_action("attack", target_id="agent9", reward=0.75,
                                            details={"damage": 3})
    assert action_id == "agent7-12-attack"
    stored = mem.actions.get(action_id, agent_id="agent7")
    assert stored.model_copy(update={"stored_at": None}) == Action(
        agent_id="agent7", simulation_id="sim42", step_number=12, action_type="attack",
        action_id="agent7-12-attack", action_target_id="agent9", resources_before=33.5,
        reward=0.75, details={"damage": 3}, position=(1.5, -2.0))
    assert r.smembers("agent:agent7:action:targets:agent9") == {b"agent7-12-attack"}
    assert r.lrange("simulation:sim42:actions", 0, -1) == [b"agent7-12-attack"]


def test_remember_agent_action_twice_in_a_step_gets_distinct_ids(mem):
    agent = Agent(mem.actions)
    assert agent.remember_agent_action("move") == "agent7-12-move"
    assert agent.remember_agent_action("move") == "agent7-12-move.1"


def test_remember_agent_action_without_position(mem):
    agent = Agent(mem.actions)
    agent.position_x = None
    action_id = agent.remember_agent_action("rest")
    assert mem.actions.get(action_id, agent_id="agent7").position is None


def test_remember_agent_action_with_memory_off_returns_none_and_writes_nothing(mem, r):
    agent = Agent(mem.actions, use_memory=False)
    assert agent.remember_agent_action("move", reward=1.0) is None
    assert r.dbsize() == 0


def test_mixin_queries(mem):
    agent = Agent(mem.actions)
    for t, step, reward, target in [("move", 1, 0.2, None), ("attack", 2, 0.9, "agent9"),
                                    ("move", 3, 0.4, None), ("attack", 4, -1.0, "agent9")]:
        agent.environment.time = step
        agent.remember_agent_action(t, target_id=target, reward=reward)
    lesson = agent.learn_from_past_actions("move", (1.5, -2.0))
    assert lesson.action_count == 2
    assert lesson.avg_reward == pytest.approx(0.3)
    assert [a.action_id for a in agent.find_successful_interactions_with("agent9")] == [
        "agent7-2-attack"]
    analysis = agent.analyze_action_sequence(4)
    assert analysis.sequence == ["attack", "move", "attack", "move"]
    assert analysis.cycle_detected is True


def test_mixin_queries_with_memory_off(mem):
    agent = Agent(mem.actions, use_memory=False)
    assert agent.learn_from_past_actions("move") is None
    assert agent.find_successful_interactions_with("agent9") == []
    assert agent.analyze_action_sequence() is None
