"""The parts of test_regressions.py that need no server (moved from tests/integration)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pytest

import agentmem
from agentmem import Action, Record, SortedIndex, declare
from agentmem.errors import SchemaError
from agentmem.model.codec import Codec
from agentmem.model.fields import AsJson, Identifier, Split


def act(agent: str = "a", step: int = 1, typ: str = "move", **kw: Any) -> Action:
    return Action(agent_id=agent, simulation_id="s", step_number=step, action_type=typ, **kw)


def test_a_score_field_must_be_numeric():
    class Tagged(Record):
        tag_id: Identifier
        level: str

    with pytest.raises(SchemaError, match="score"):
        declare(Tagged, key="tag:{tag_id}", id="tag_id",
                indexes=[SortedIndex("by_level", "tags", score="level")])


def test_decoding_never_shares_a_mutable_default():
    class WithMeta(Record):
        item_id: str
        meta: Annotated[dict[str, Any], AsJson()] = {}  # noqa: RUF012 - the case under test

    codec = Codec(WithMeta)
    a = codec.decode({b"item_id": b"1"})
    a.meta["x"] = 1
    assert codec.decode({b"item_id": b"2"}).meta == {}
    assert WithMeta(item_id="3").meta == {}


def test_big_ints_next_to_numpy_values_stay_exact():
    a = act(details={"a": np.int64(1), "b": 2**70 + 1})
    assert a.details == {"a": 1, "b": 2**70 + 1}


def test_split_of_optional_strings_refuses_none_elements():
    class Pair(Record):
        pair_id: str
        names: Annotated[tuple[str | None, str] | None, Split("first", "second")] = None

    with pytest.raises(agentmem.InvalidInput):
        Codec(Pair).encode(Pair(pair_id="p", names=(None, "b")))


