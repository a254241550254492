"""A model declared by the test is stored and queried with no storage code of its own."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import numpy as np
import pytest
from pydantic import BaseModel

import agentmem
from agentmem import (
    AsJson,
    CounterIndex,
    Identifier,
    ListIndex,
    Record,
    SetIndex,
    SortedIndex,
    Split,
    StoredAs,
    Vector,
    WriteTime,
    declare,
)
from agentmem.errors import SchemaError


class AgentSnapshot(Record):
    agent_id: Identifier
    step: int
    health: float
    zone: Identifier
    position: Annotated[tuple[float, float] | None, Split("position_x", "position_y")] = None


SNAPSHOTS = declare(
    AgentSnapshot,
    key="agent:{agent_id}:snapshot:{step}",
    id="step",
    ttl=600,
    indexes=[
        SortedIndex("by_step", "agent:{agent_id}:snapshots", score="step"),
        SortedIndex("by_health", "agent:{agent_id}:snapshots:health", score="health"),
        SetIndex("in_zone", "agent:{agent_id}:zone:{zone}"),
        ListIndex("log", "snapshots:log"),
        CounterIndex("per_zone", "snapshots:zones", field="zone"),
    ],
)


def snap(step: int, health: float = 1.0, agent_id: str = "a1", zone: str = "z1",
         position=None) -> AgentSnapshot:
    return AgentSnapshot(agent_id=agent_id, step=step, health=health, zone=zone,
                         position=position)


def steps(rows) -> list[int]:
    return [x.step for x in rows]


class Note(BaseModel):
    """Any pydantic model can be declared, not only Record subclasses."""

    note_id: str
    author: str
    text: str


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

class Event(Record):
    event_id: Identifier | None = None
    kind: Identifier
    n: int
    payload: Annotated[dict[str, object] | None, AsJson()] = None
    vec: Annotated[np.ndarray | None, Vector("float32", dim=2)] = None
    label: Annotated[str | None, StoredAs("lbl")] = None
    at: Annotated[int | None, WriteTime()] = None


EVENTS = declare(
    Event,
    key="event:{event_id}",
    id="event_id",
    id_template="{kind}-{n}",
    unique_in="by_n",
    indexes=[SortedIndex("by_n", "events:by_n", score="n"), SetIndex("all", "events:all")],
)


