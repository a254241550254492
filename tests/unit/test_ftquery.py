"""The Query Engine's query builder and index definitions (pure: no server)."""

from __future__ import annotations

import pytest

from agentmem import Q
from agentmem.errors import InvalidInput
from agentmem.plans.ftindex import action_index, aggregate_call, vector_index
from agentmem.plans.ftquery import escape_tag, render, sort_key
from agentmem.plans.keyspace import layout


def test_render() -> None:
    assert render([]) == "*"
    assert render([Q.reward > 0.5, Q.step_number.between(1, None)]) == (
        "@reward:[(0.5 +inf] @step_number:[1 +inf]")
    assert render([(Q.agent_id == "a1") | ~Q.action_type.isin(["a", "b"])]) == (
        "(@agent_id:{a1} | -(@action_type:{a | b}))")
    assert render([Q.reward == 2**60, Q.reward < float("-inf")]) == (
        f"@reward:[{2**60} {2**60}] @reward:[-inf (-inf]")
    assert render([Q.details.matches("Found: gold!")]) == "@details:(Found gold)"


@pytest.mark.parametrize(("raw", "escaped"), [
    ("a,1", r"a\,1"), ("a|b}", r"a\|b\}"), ("x y", r"x\ y"), ("a\\", "a\\\\"),
    ("ä_1", "ä_1"), ("-*", r"\-\*"), ("$p", r"\$p")])
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


def test_bad_conditions() -> None:
    for bad in (lambda: Q.agent_id > 1, lambda: Q.reward.isin(["a"]),
                lambda: Q.details == "x", lambda: Q.reward > "1", lambda: Q.reward > True,
                lambda: Q.agent_id == 3, lambda: Q.agent_id.isin([]),
                lambda: Q.details.matches(" ! "), lambda: escape_tag("a\x00"),
                lambda: bool(Q.reward > 1), lambda: sort_key("details"),
                lambda: (Q.reward > 1) & "x"):  # type: ignore[operator]
        with pytest.raises(InvalidInput):
            bad()


def test_index_definitions() -> None:
    one, two = action_index(layout(1)), action_index(layout(2))
    assert one.prefix == "agent:"
    assert two.prefix == "agent:{"
    assert one.name.startswith(one.stem)
    assert one.name != two.name
    assert 'contains(@__key, ":action:") == 1' in one.key_filter
    assert vector_index(layout(1), 8).name.startswith("agentmem:idx:vectors:L1:8:")
    call = aggregate_call(one.name, "*", sort_key("-reward"), 0, 10)
    assert call.args[6:14] == ("SORTBY", 6, "@reward", "DESC", "@step_number", "DESC",
                               "@action_id", "DESC")
    with pytest.raises(InvalidInput):
        vector_index(layout(1), 0)
