"""Models stored and read back on real Redis and Valkey (the pure model rules are in
tests/unit/test_models.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import redis
import redis.asyncio
from _support import BAD_FIELDS, BASE, act

import agentmem
from agentmem import Action
from agentmem.errors import (
    AgentMemError,
    DuplicateId,
    InvalidInput,
)


@pytest.mark.parametrize("bad", list(BAD_FIELDS.values()), ids=list(BAD_FIELDS))
def test_record_with_bad_input_raises_and_writes_nothing(mem, r, bad):
    mem.actions.add(act("a0", 0))
    size = r.dbsize()
    with pytest.raises(InvalidInput) as info:
        mem.actions.record(**{**BASE, **bad})
    assert isinstance(info.value, AgentMemError)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
    assert r.dbsize() == size
    assert r.zcard("agent:a0:action:timeline") == 1


def test_reserved_action_id_is_refused_on_write_not_on_construction(mem, r):
    a = Action(**BASE, action_id="rewards")
    with pytest.raises(InvalidInput):
        mem.actions.add(a)
    assert r.dbsize() == 0


def test_embedding_of_wrong_dimension_is_refused(connect, r):
    m = connect(embedding_dim=4)
    m.actions.record(**BASE, embedding=np.zeros(4, dtype=np.float32))
    size = r.dbsize()
    with pytest.raises(InvalidInput, match="4"):
        m.actions.record(**{**BASE, "step_number": 2}, embedding=np.zeros(3, dtype=np.float32))
    assert r.dbsize() == size


def _construct(**over):
    """An Action that skipped validation, as a caller's bug could produce."""
    good = Action(**BASE)
    return Action.model_construct(**{**good.__dict__, **over})


MIDDLE = {
    "nan-reward": lambda: _construct(step_number=500, reward=math.nan),
    "surrogate-details": lambda: _construct(step_number=500, details=["\ud800"]),
    "set-details": lambda: _construct(step_number=500, details={1, 2}),
    "bad-agent-id": lambda: _construct(step_number=500, agent_id="a:b"),
    "float64-embedding": lambda: _construct(step_number=500, embedding=np.zeros(4)),
    "reserved-id": lambda: act("a1", 500, action_id="relative_index"),
    "foreign-id": lambda: act("a1", 500, action_id="a2-500-move"),
}


@pytest.mark.parametrize("make_bad", list(MIDDLE.values()), ids=list(MIDDLE))
def test_one_bad_record_in_an_add_many_of_1000_writes_nothing(mem, r, make_bad):
    batch = [act("a1", s) for s in range(1000)]
    batch[500] = make_bad()
    with pytest.raises(InvalidInput) as info:
        mem.actions.add_many(batch)
    assert "500" in str(info.value)
    assert r.dbsize() == 0


def test_a_non_action_in_an_add_many_is_invalid_input(mem, r):
    batch = [act("a1", s) for s in range(1000)]
    batch[500] = {"agent_id": "a1"}  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="500"):
        mem.actions.add_many(batch)
    assert r.dbsize() == 0


def test_wrong_dimension_in_an_add_many_of_1000_writes_nothing(connect, r):
    m = connect(embedding_dim=4)
    vec = np.zeros(4, dtype=np.float32)
    batch = [act("a1", s, embedding=vec) for s in range(1000)]
    batch[700] = act("a1", 700, embedding=np.zeros(5, dtype=np.float32))
    with pytest.raises(InvalidInput):
        m.actions.add_many(batch)
    assert r.dbsize() == 0


def test_unencodable_text_in_details_is_invalid_input(mem, r):
    with pytest.raises(InvalidInput):
        mem.actions.record(**BASE, details={"text": "\ud800"})
    assert r.dbsize() == 0


def test_unencodable_details_in_an_add_many_writes_nothing(mem, r):
    batch = [act("a1", s) for s in range(1000)]
    batch[700] = _construct(step_number=700, details={"text": "\udcff"})
    with pytest.raises(InvalidInput, match="700"):
        mem.actions.add_many(batch)
    assert r.dbsize() == 0


def test_lone_surrogate_in_an_id_is_invalid_input(mem, r):
    with pytest.raises(InvalidInput):
        mem.actions.record(**{**BASE, "agent_id": "a\ud800"})
    assert r.dbsize() == 0


def test_numpy_scalars_are_accepted_for_numbers(mem):
    a = mem.actions.record(**{**BASE, "step_number": np.int64(3)}, reward=np.float32(0.5),
                           position=(np.float64(1.0), np.float32(2.0)))
    assert a.step_number == 3
    assert type(a.step_number) is int
    assert a.reward == 0.5
    assert a.position == (1.0, 2.0)


def test_enum_action_type_is_stored_as_its_value(mem):
    import enum

    class Kind(enum.Enum):
        MOVE = "move"

    assert mem.actions.record(**{**BASE, "action_type": Kind.MOVE}).action_type == "move"


# -- configuration -----------------------------------------------------------------


def test_valkey_scheme_is_accepted(server, r):
    url = server.url.replace("redis://", "valkey://", 1)
    with agentmem.connect(url) as m:
        assert m.ping() is True


def test_duplicate_id_error_lists_stored_and_failed(mem):
    mem.actions.add(act("a1", 1))
    with pytest.raises(DuplicateId) as info:
        mem.actions.add_many([act("a1", 2), act("a1", 1, "eat", action_id="a1-1-move")])
    assert info.value.stored == ["a1-2-move"]
    assert list(info.value.failed) == [1]


# -- connecting to servers of our own ----------------------------------------------------

def test_connect_with_an_existing_client(server, r):
    client = redis.Redis.from_url(server.url)
    with agentmem.connect(client=client) as m:
        assert m.client is client
        assert m.actions.add(act()).action_id == "a1-1-move"
    assert r.exists("agent:a1:action:a1-1-move")


