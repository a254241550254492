"""Importance (section 7), learning (8.1), sequences (8.3) and the agent mixin (5.2)."""
# ruff: noqa: W293 - the specification's function is copied verbatim

from __future__ import annotations

import pytest
from _support import act
from hypothesis import given
from hypothesis import strategies as st

from agentmem import action_importance
from agentmem.model.analytics import analyze_sequence, learn
from agentmem.plans import keyspace


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


@pytest.mark.parametrize(("fields", "expected"), list(IMPORTANCE_CASES.values()),
                         ids=list(IMPORTANCE_CASES))
def test_importance_of_an_action(fields, expected):
    a = act("a1", 1, **fields)  # action_type "move" unless given
    assert action_importance(a) == pytest.approx(expected)


@pytest.mark.parametrize(("fields", "expected"), list(IMPORTANCE_CASES.values()),
                         ids=list(IMPORTANCE_CASES))
def test_importance_of_a_text_hash(fields, expected):
    h = {"action_type": "move", **{k: str(v) for k, v in fields.items()}}
    assert action_importance(h) == pytest.approx(expected)
    assert action_importance(h) == calculate_action_importance(h)


def test_importance_of_a_bytes_hash():
    h = {b"action_type": b"share", b"reward": b"-1", b"action_target_id": b"x",
         b"resources_before": b"3", b"resources_after": b"3.5"}
    assert action_importance(h) == 1.0
    assert action_importance({b"action_type": b"attack", b"reward": b"0.5"}) == pytest.approx(
        0.55)
    assert action_importance({b"action_type": b"move"}) == 0.0


def test_importance_of_huge_values_is_capped_at_one():
    assert action_importance(act("a1", 1, "attack", reward=1e300, action_target_id="t",
                                 resources_before=-1e300, resources_after=1e300)) == 1.0


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@given(st.sampled_from(["move", "attack", "reproduce", "share", "eat"]),
       st.none() | finite, st.none() | st.just("t1"), st.none() | finite, st.none() | finite)
def test_importance_equals_the_spec_on_every_input(atype, reward, target, before, after):
    a = act("a1", 1, atype, reward=reward, action_target_id=target, resources_before=before,
            resources_after=after)
    text = {"action_type": atype}
    for k, v in (("reward", reward), ("action_target_id", target),
                 ("resources_before", before), ("resources_after", after)):
        if v is not None:
            text[k] = v if isinstance(v, str) else repr(v)
    expected = calculate_action_importance(text)
    assert action_importance(a) == expected
    assert action_importance(text) == expected
    codec = keyspace.layout().action.codec
    stored = {n.encode(): (v if isinstance(v, bytes) else str(v).encode())
              for n, v in zip(codec.storage_names, codec.encode(a), strict=True)
              if v is not None}
    assert action_importance(stored) == expected
    assert 0.0 <= expected <= 1.0


# -- learn -------------------------------------------------------------------------

def at(step, reward, position=None, atype="move"):
    return act("a1", step, atype, reward=reward, position=position,
               action_id=f"a1-{step}-{atype}")


def test_learn_of_nothing_is_none():
    assert learn([]) is None
    assert learn([], position=(0.0, 0.0)) is None


def test_learn_without_position_uses_all():
    past = [at(3, 0.5), at(2, None), at(1, -0.1)]
    lesson = learn(past)
    assert lesson.action_count == 3
    assert lesson.avg_reward == pytest.approx(0.2)
    assert lesson.best_action == past[0]


def test_learn_filters_to_actions_strictly_within_radius():
    past = [at(4, 0.9, (1.0, 0.0)), at(3, 0.2, (0.1, 0.1)), at(2, 0.4, (0.0, 0.0)),
            at(1, 1.0, None)]
    lesson = learn(past, position=(0.0, 0.0))
    assert lesson.action_count == 2
    assert lesson.avg_reward == pytest.approx(0.3)
    assert lesson.best_action == past[2]
    # at distance exactly radius: not near
    lesson = learn(past, position=(0.0, 0.0), radius=1.0)
    assert lesson.action_count == 2
    lesson = learn(past, position=(0.0, 0.0), radius=1.0001)
    assert lesson.action_count == 3
    assert lesson.best_action == past[0]


def test_learn_falls_back_to_all_when_none_is_near():
    past = [at(2, 0.4, (5.0, 5.0)), at(1, 0.8, None)]
    lesson = learn(past, position=(0.0, 0.0))
    assert lesson.action_count == 2
    assert lesson.avg_reward == pytest.approx(0.6)
    assert lesson.best_action == past[1]


def test_learn_with_no_rewards():
    past = [at(2, None), at(1, None)]
    lesson = learn(past)
    assert lesson.avg_reward == 0.0
    assert lesson.action_count == 2
    assert lesson.best_action == past[0]


def test_learn_best_prefers_any_reward_over_none():
    past = [at(2, None), at(1, -5.0)]
    assert learn(past).best_action == past[1]
    assert learn(past).avg_reward == -5.0


# -- sequences -----------------------------------------------------------------------

def seq(*types, rewards=None):
    rewards = rewards or [None] * len(types)
    return [at(10 - i, rw, atype=t) for i, (t, rw) in enumerate(zip(types, rewards, strict=True))]


def test_sequence_of_nothing_is_none():
    assert analyze_sequence([]) is None


@pytest.mark.parametrize(("types", "cycle"), [
    (("a", "b", "a", "b"), True),
    (("a", "a", "a", "a"), True),
    (("a", "b", "a", "b", "c"), True),
    (("a", "b", "a", "c"), False),
    (("a", "b", "c", "b"), False),
    (("c", "a", "b", "a", "b"), False),
    (("a", "b", "a"), False),
    (("a",), False),
])
def test_abab_cycle_rule(types, cycle):
    assert analyze_sequence(seq(*types)).cycle_detected is cycle


def test_sequence_counts_average_and_order():
    out = analyze_sequence(seq("move", "eat", "move", "rest", rewards=[1.0, None, 0.5, 0.0]))
    assert out.sequence == ["move", "eat", "move", "rest"]
    assert out.action_counts == {"move": 2, "eat": 1, "rest": 1}
    assert out.most_common == "move"
    assert out.avg_reward == pytest.approx(0.5)


def test_sequence_without_rewards_has_no_average():
    assert analyze_sequence(seq("a", "b")).avg_reward is None


def test_most_common_tie_goes_to_the_first_seen():
    assert analyze_sequence(seq("b", "a", "a", "b")).most_common == "b"
    assert analyze_sequence(seq("a", "b")).most_common == "a"
    assert analyze_sequence(seq("c", "b", "b", "a", "a")).most_common == "b"


# -- the agent mixin -----------------------------------------------------------------


