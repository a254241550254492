"""Section 7 and 8 analytics over actions stored in real Redis and Valkey (the pure
computations are in tests/unit/test_analytics.py)."""
# ruff: noqa: W293 - the specification's function is copied verbatim

from __future__ import annotations

import pytest
from _support import act
from hypothesis import strategies as st

from agentmem import Action, AgentMemoryMixin


def calculate_action_importance(action_hash):
    """Section 7 of the specification, verbatim."""
    importance = 0.0
    
    # Reward-based importance
    if "reward" in action_hash:
        reward = float(action_hash["reward"])
        # Higher absolute rewards (positive or negative) are more important
        importance += min(abs(reward) * 0.5, 0.5)
    
    # Action type importance
    action_type = action_hash["action_type"]
    if action_type in ["attack", "reproduce", "share"]:
        # Social interactions are more important
        importance += 0.3
    
    # Target-based importance
    if "action_target_id" in action_hash:
        # Actions involving other agents are more important
        importance += 0.2
    
    # Resource change importance
    if "resources_before" in action_hash and "resources_after" in action_hash:
        resources_before = float(action_hash["resources_before"])
        resources_after = float(action_hash["resources_after"])
        resource_change = abs(resources_after - resources_before)
        
        # Significant resource changes are more important
        if resource_change > 0.2:
            importance += 0.2
    
    return min(importance, 1.0)


# -- importance --------------------------------------------------------------------

IMPORTANCE_CASES = {
    "nothing": ({}, 0.0),
    "small-reward": ({"reward": 0.4}, 0.2),
    "negative-reward": ({"reward": -0.4}, 0.2),
    "zero-reward": ({"reward": 0.0}, 0.0),
    "reward-capped-at-half": ({"reward": 7.0}, 0.5),
    "reward-exactly-one": ({"reward": 1.0}, 0.5),
    "attack": ({"action_type": "attack"}, 0.3),
    "reproduce": ({"action_type": "reproduce"}, 0.3),
    "share": ({"action_type": "share"}, 0.3),
    "not-social": ({"action_type": "Attack"}, 0.0),
    "target": ({"action_target_id": "a2"}, 0.2),
    "resource-change": ({"resources_before": 1.0, "resources_after": 1.3}, 0.2),
    "resource-drop": ({"resources_before": 5.0, "resources_after": 1.0}, 0.2),
    "resource-change-exactly-0.2": ({"resources_before": 0.0, "resources_after": 0.2}, 0.0),
    "resource-change-small": ({"resources_before": 1.0, "resources_after": 1.1}, 0.0),
    "only-resources-before": ({"resources_before": 0.0}, 0.0),
    "only-resources-after": ({"resources_after": 9.0}, 0.0),
    "share-with-reward": ({"action_type": "share", "reward": 0.2}, 0.4),
    "target-and-resources": ({"action_target_id": "x", "resources_before": 0.0,
                              "resources_after": 1.0}, 0.4),
    "everything-capped": ({"action_type": "attack", "reward": -3.0, "action_target_id": "a2",
                           "resources_before": 10.0, "resources_after": 2.0}, 1.0),
    "just-under-cap": ({"action_type": "attack", "reward": 0.6, "action_target_id": "a2"}, 0.8),
}


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


# -- learn -------------------------------------------------------------------------

def at(step, reward, position=None, atype="move"):
    return act("a1", step, atype, reward=reward, position=position,
               action_id=f"a1-{step}-{atype}")


# -- sequences -----------------------------------------------------------------------

def seq(*types, rewards=None):
    rewards = rewards or [None] * len(types)
    return [at(10 - i, rw, atype=t) for i, (t, rw) in enumerate(zip(types, rewards, strict=True))]


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
