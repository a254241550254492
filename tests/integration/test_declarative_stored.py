"""Declared models stored through their repositories on real Redis and Valkey (the
declaration rules are in tests/unit/test_declarative.py)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pytest
from _support import AgentSnapshot, snap
from pydantic import BaseModel

from agentmem import (
    AsJson,
    CounterIndex,
    Identifier,
    ListIndex,
    Record,
    SetIndex,
    SortedIndex,
    StoredAs,
    Vector,
    WriteTime,
    declare,
)
from agentmem.errors import DuplicateId, InvalidId, InvalidInput, SchemaError

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


@pytest.fixture
def repo(mem):
    return mem.repository(SNAPSHOTS)


@pytest.fixture
def stored(repo):
    rows = [snap(1, 0.9, position=(1.0, 2.0)), snap(2, 0.5, zone="z2"), snap(3, 0.7),
            snap(4, 0.1, zone="z2"), snap(5, 0.3), snap(2, 0.8, agent_id="a2")]
    return repo.add_many(rows)


def steps(rows) -> list[int]:
    return [x.step for x in rows]


def test_write_creates_the_declared_keys(repo, r):
    repo.add(snap(7, 0.25, position=(3.0, 4.0)))
    assert {k.decode(): r.type(k) for k in r.keys("*")} == {
        "agent:a1:snapshot:7": b"hash",
        "agent:a1:snapshots": b"zset",
        "agent:a1:snapshots:health": b"zset",
        "agent:a1:zone:z1": b"set",
        "snapshots:log": b"list",
        "snapshots:zones": b"hash",
    }
    h = r.hgetall("agent:a1:snapshot:7")
    assert {k: h[k] for k in (b"agent_id", b"step", b"zone")} == {
        b"agent_id": b"a1", b"step": b"7", b"zone": b"z1"}
    assert float(h[b"health"]) == 0.25
    assert (float(h[b"position_x"]), float(h[b"position_y"])) == (3.0, 4.0)
    assert set(h) == {b"agent_id", b"step", b"health", b"zone", b"position_x", b"position_y"}
    assert r.zrange("agent:a1:snapshots", 0, -1, withscores=True) == [(b"7", 7.0)]
    assert r.hgetall("snapshots:zones") == {b"z1": b"1"}


def test_ttl_applies_to_the_record_hash_only(repo, r):
    repo.add(snap(1))
    assert 0 < r.ttl("agent:a1:snapshot:1") <= 600
    assert r.ttl("agent:a1:snapshots") == -1


def test_add_returns_the_record(repo):
    s = snap(3, position=(0.5, -0.5))
    assert repo.add(s) == s


def test_get(repo, stored):
    assert repo.get(1, agent_id="a1") == snap(1, 0.9, position=(1.0, 2.0))
    assert repo.get(2, agent_id="a2") == snap(2, 0.8, agent_id="a2")
    assert repo.get(99, agent_id="a1") is None


def test_get_many(repo, stored):
    assert repo.get_many([3, 99, 1], agent_id="a1") == [snap(3, 0.7), None,
                                                        snap(1, 0.9, position=(1.0, 2.0))]


def test_range_with_bounds(repo, stored):
    assert steps(repo.range("by_step", agent_id="a1")) == [1, 2, 3, 4, 5]
    assert steps(repo.range("by_step", min=2, max=4, agent_id="a1")) == [2, 3, 4]
    assert steps(repo.range("by_step", min=4, agent_id="a1")) == [4, 5]
    assert steps(repo.range("by_step", max=1, agent_id="a1")) == [1]
    assert repo.range("by_step", min=6, agent_id="a1") == []


def test_range_newest_first_and_limit(repo, stored):
    assert steps(repo.range("by_step", newest_first=True, agent_id="a1")) == [5, 4, 3, 2, 1]
    assert steps(repo.range("by_step", newest_first=True, limit=2, agent_id="a1")) == [5, 4]
    assert steps(repo.range("by_step", min=2, max=4, limit=2, agent_id="a1")) == [2, 3]


def test_range_by_a_float_score(repo, stored):
    assert steps(repo.range("by_health", min=0.5, newest_first=True, agent_id="a1")) == [
        1, 3, 2]


def test_members_of_a_set_index_ordered_by_a_sorted_index(repo, stored):
    assert steps(repo.members("in_zone", order_by="by_step", zone="z1", agent_id="a1")) == [
        5, 3, 1]
    assert steps(repo.members("in_zone", order_by="by_health", newest_first=False,
                              zone="z1", agent_id="a1")) == [5, 3, 1]
    assert steps(repo.members("in_zone", order_by="by_step", limit=1, zone="z2",
                              agent_id="a1")) == [4]


def test_count_of_each_index_kind(repo, stored, r):
    assert repo.count("by_step", agent_id="a1") == 5
    assert repo.count("by_step", agent_id="a2") == 1
    assert repo.count("in_zone", zone="z2", agent_id="a1") == 2
    assert repo.count("log") == 6
    assert repo.count("per_zone") == 2  # distinct zones
    assert r.hgetall("snapshots:zones") == {b"z1": b"4", b"z2": b"2"}


def test_explicit_id_that_exists_raises_duplicate_id(repo, stored, r):
    with pytest.raises(DuplicateId):
        repo.add(snap(3, 0.0))
    assert float(r.hget("agent:a1:snapshot:3", "health")) == 0.7


def test_scope_ids_are_checked(repo):
    with pytest.raises(InvalidId):
        repo.get(1, agent_id="a:1")


def test_unknown_index_raises_schema_error(repo):
    with pytest.raises(SchemaError):
        repo.range("nope", agent_id="a1")
    with pytest.raises(SchemaError):
        repo.range("in_zone", agent_id="a1", zone="z1")  # a set, not a sorted index


async def test_async_repository_of_a_declared_model(amem):
    repo = amem.repository(SNAPSHOTS)
    await repo.add_many([snap(1), snap(2), snap(3)])
    assert steps(await repo.range("by_step", min=2, agent_id="a1")) == [2, 3]
    assert await repo.get(2, agent_id="a1") == snap(2)
    assert await repo.count("by_step", agent_id="a1") == 3


class Note(BaseModel):
    """Any pydantic model can be declared, not only Record subclasses."""

    note_id: str
    author: str
    text: str


def test_a_plain_pydantic_model_can_be_declared(mem, r):
    notes = mem.repository(declare(Note, key="note:{note_id}", id="note_id",
                                   indexes=[SetIndex("by_author", "author:{author}:notes")]))
    notes.add(Note(note_id="n1", author="ann", text="hello"))
    assert notes.get("n1") == Note(note_id="n1", author="ann", text="hello")
    assert r.ttl("note:n1") == -1
    assert notes.count("by_author", author="ann") == 1


# -- declaration errors ------------------------------------------------------------


def test_write_and_read_agree_on_a_negative_int_id(repo, r):
    try:
        repo.add(snap(-1))
    except InvalidId:  # refusing it is consistent too
        assert r.dbsize() == 0
        return
    assert repo.get(-1, agent_id="a1") == snap(-1)


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


def test_generated_ids_of_a_declared_model_get_suffixes(mem, r):
    repo = mem.repository(EVENTS)
    out = repo.add_many([Event(kind="ping", n=1), Event(kind="ping", n=1), Event(kind="pong", n=1)])
    assert [e.event_id for e in out] == ["ping-1", "ping-1.1", "pong-1"]
    assert repo.add(Event(kind="ping", n=1)).event_id == "ping-1.2"
    assert r.zcard("events:by_n") == 4


def test_hints_of_a_declared_model(mem, r):
    repo = mem.repository(EVENTS)
    before = int(r.time()[0])
    e = repo.add(Event(kind="k", n=2, payload={"a": (1, 2)}, vec=np.array([1, 2], np.float32),
                       label="hello", at=5))
    assert e.at >= before  # WriteTime: the server's clock, not the caller's 5
    h = r.hgetall("event:k-2")
    assert h[b"lbl"] == b"hello"  # StoredAs
    assert b"label" not in h
    assert h[b"vec"] == np.array([1, 2], "<f4").tobytes()  # Vector: raw bytes
    assert h[b"payload"] in (b'{"a":[1,2]}', b'{"a": [1, 2]}')  # AsJson
    assert repo.get("k-2") == e.model_copy(update={"payload": {"a": [1, 2]}})


def test_add_returns_what_get_reads_for_a_json_field(mem):
    repo = mem.repository(EVENTS)
    e = repo.add(Event(kind="k", n=2, payload={"a": (1, 2), "b": np.int64(3)}))
    assert repo.get("k-2") == e


def test_vector_dimension_of_a_declared_model_is_enforced(mem, r):
    repo = mem.repository(EVENTS)
    with pytest.raises(InvalidInput):
        repo.add(Event(kind="k", n=1, vec=np.zeros(3, np.float32)))
    assert r.dbsize() == 0


def test_reserved_id_of_a_declared_model_is_refused(mem, r):
    """event:{event_id} and the index key event:... never collide: 'all' is not reserved
    here, but an index under the record's own prefix reserves its name."""
    spec = declare(Event, key="event:{event_id}", id="event_id",
                   indexes=[SetIndex("all", "event:all")])
    assert spec.reserved_ids == {"all"}
    with pytest.raises(InvalidId):
        mem.repository(spec).add(Event(event_id="all", kind="k", n=1))
    assert r.dbsize() == 0
