"""A model declared by the test is stored and queried with no storage code of its own."""

from __future__ import annotations

import datetime as dt

import pytest
from _support import AgentSnapshot
from pydantic import BaseModel

import agentmem
from agentmem import (
    CounterIndex,
    ListIndex,
    SetIndex,
    SortedIndex,
    declare,
)
from agentmem.errors import SchemaError

# -- declaration errors ------------------------------------------------------------

def test_id_not_in_key_raises_schema_error():
    with pytest.raises(SchemaError):
        declare(AgentSnapshot, key="agent:{agent_id}:snapshot", id="step")


def test_id_not_a_field_raises_schema_error():
    with pytest.raises(SchemaError):
        declare(AgentSnapshot, key="snap:{nope}", id="nope")


def test_unknown_field_in_key_raises_schema_error():
    with pytest.raises(SchemaError):
        declare(AgentSnapshot, key="agent:{owner}:snapshot:{step}", id="step")


@pytest.mark.parametrize("index", [
    SortedIndex("s", "agent:{agent_id}:x", score="nope"),
    SortedIndex("s", "agent:{nope}:x", score="step"),
    SetIndex("s", "agent:{agent_id}:x", member="nope"),
    ListIndex("s", "x:{nope}"),
    CounterIndex("c", "x", field="nope"),
], ids=["score", "key", "set-member", "list-key", "counter-field"])
def test_unknown_field_in_index_raises_schema_error(index):
    with pytest.raises(SchemaError):
        declare(AgentSnapshot, key="agent:{agent_id}:snapshot:{step}", id="step",
                indexes=[index])


def test_unsupported_field_type_raises_schema_error():
    class WithTime(BaseModel):
        id: str
        when: dt.datetime

    class WithDict(BaseModel):
        id: str
        data: dict[str, int]

    for model in (WithTime, WithDict):
        with pytest.raises(SchemaError):
            declare(model, key="x:{id}", id="id")


@pytest.mark.parametrize("kwargs", [
    {"ttl": 0}, {"ttl": -1},
    {"indexes": [SortedIndex("a", "k:{agent_id}", score="step"),
                 SortedIndex("a", "k2:{agent_id}", score="step")]},
    {"indexes": [SortedIndex("a", "k:{agent_id}", score="step", cap=0)]},
    {"key": "agent:{agent_id:>3}:snapshot:{step}"},
    {"key": "agent:{agent_id}:snapshot:{step"},
], ids=["ttl-0", "ttl-negative", "duplicate-index", "cap-0", "format-spec", "unclosed"])
def test_inconsistent_declaration_raises_schema_error(kwargs):
    args = {"key": "agent:{agent_id}:snapshot:{step}", "id": "step", **kwargs}
    with pytest.raises(SchemaError):
        declare(AgentSnapshot, **args)


def test_schema_error_is_an_agentmem_error():
    assert issubclass(SchemaError, agentmem.AgentMemError)


# -- storage hints on a declared model -------------------------------------------------------


