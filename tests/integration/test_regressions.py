"""Regression tests for bugs found in review; each names the behaviour it protects."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action, Record, SetIndex, SortedIndex, declare
from agentmem.errors import ConfigError, DecodeError, InvalidId, WriteError
from agentmem.model.codec import Codec
from agentmem.model.fields import Identifier
from agentmem.servers.local import LocalServer, find_binary


def act(agent: str = "a", step: int = 1, typ: str = "move", **kw: Any) -> Action:
    return Action(agent_id=agent, simulation_id="s", step_number=step, action_type=typ, **kw)


class Note(Record):
    agent_id: Identifier
    kind: Identifier
    step: int
    note_id: str | None = None


NOTES = declare(Note, key="agent:{agent_id}:note:{note_id}", id="note_id", id_template="{kind}",
                unique_in="tl", indexes=[SortedIndex("tl", "agent:{agent_id}:notes", score="step"),
                                         SetIndex("bykind", "kinds:{kind}")])


def test_renumbering_one_scope_leaves_another_scopes_ids_alone(mem):
    repo = mem.repository(NOTES)
    repo.add(Note(agent_id="x", kind="k", step=1))
    out = repo.add_many([Note(agent_id="x", kind="k", step=2),
                         Note(agent_id="y", kind="k", step=2)])
    assert [(n.agent_id, n.note_id) for n in out] == [("x", "k.1"), ("y", "k")]
    assert [n.note_id for n in repo.range("tl", agent_id="y")] == ["k"]
    assert [n.note_id for n in repo.range("tl", agent_id="x")] == ["k", "k.1"]


def test_generated_id_made_of_non_key_fields_is_checked(mem, r):
    spec = declare(Note, key="agent:{agent_id}:note:{note_id}", id="note_id",
                   id_template="{kind}x", indexes=[SortedIndex("tl", "agent:{agent_id}:note:"
                                                               "timeline", score="step")])
    # kind is checked as an id already; a template of plain fields is checked as a whole
    assert spec.reserved_ids == {"timeline"}
    with pytest.raises(InvalidId):
        mem.repository(spec).add(Note.model_construct(agent_id="x", kind="a b", step=1))
    assert r.dbsize() == 0


def test_counter_values_hincrby_would_reject_refuse_the_record_whole(mem, r):
    r.hset("simulation:s:actions:by_type", "move", "01")
    with pytest.raises(WriteError) as err:
        mem.actions.add_many([act(agent="b", typ="rest"), act(step=2)])
    assert set(err.value.failed) == {0, 1}
    assert sorted(r.keys("*")) == [b"simulation:s:actions:by_type"]


def test_a_ttl_beyond_what_redis_accepts_is_a_config_error():
    with pytest.raises(ConfigError):
        agentmem.connect("redis://127.0.0.1:1/0", ttl=10**16)


def test_wrong_type_refuses_only_records_that_write_to_that_key(mem, r):
    r.set("agent:a:action:rewards", "x")
    with pytest.raises(WriteError) as err:
        mem.actions.add_many([act(step=1, reward=1.0), act(step=2)])
    assert list(err.value.failed) == [0]
    assert err.value.stored == ["a-2-move"]


@pytest.mark.skipif(find_binary("redis") is None, reason="redis-server not on PATH")
def test_a_server_error_midway_reports_what_was_stored():
    with LocalServer("redis") as server:
        admin = redis.Redis.from_url(server.url)
        with agentmem.connect(server.url, batch_size=100) as mem:
            mem.actions.add(act(step=0))  # scripts loaded, keys created
            used = admin.info("memory")["used_memory"]
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", used + 200_000)
            batch = [act(step=i, details={"pad": "x" * 200}) for i in range(1, 3001)]
            with pytest.raises(WriteError) as err:
                mem.actions.add_many(batch)
            admin.config_set("maxmemory", 0)
            stored = err.value.stored
            assert 0 < len(stored) < 3000
            assert len(stored) + len(err.value.failed) == 3000
            assert admin.zcard("agent:a:action:timeline") == len(stored) + 1
            assert isinstance(err.value.__cause__, agentmem.BackendError)


def test_a_stored_int_that_overflows_is_a_decode_error():
    with pytest.raises(DecodeError):
        Codec(Action).decode({b"agent_id": b"a", b"simulation_id": b"s", b"action_type": b"m",
                              b"step_number": b"inf"})


def test_get_of_a_reserved_id_is_invalid_not_a_server_error(mem):
    with pytest.raises(InvalidId):
        mem.actions.get("timeline", agent_id="a")
