"""Bad input through the Redis write path: one clear InvalidInput, nothing written
(real Redis and Valkey)."""

from __future__ import annotations

import pytest
import redis

import agentmem
from agentmem import Action, integrity
from agentmem.errors import InvalidId, InvalidInput


@pytest.mark.parametrize("fields", [
    {"agent_id": "a\u200bb"}, {"simulation_id": "s\ufeff"}, {"action_type": "mo\u00adve"},
    {"step_number": True}, {"reward": False},
], ids=["zwsp-agent", "bom-sim", "soft-hyphen-type", "bool-step", "bool-reward"])
def test_record_refuses_and_writes_nothing(mem: agentmem.Memory, r: redis.Redis,
                                           fields: dict[str, object]) -> None:
    base = {"agent_id": "a1", "simulation_id": "s1", "step_number": 1, "action_type": "move"}
    with pytest.raises(InvalidInput):
        mem.actions.record(**{**base, **fields})
    assert r.dbsize() == 0 or set(r.keys()) <= {b"agentmem:layout", b"agentmem:grid_cell"}


def test_add_many_refuses_the_whole_call_for_one_bad_record(mem: agentmem.Memory,
                                                             r: redis.Redis) -> None:
    good = [Action(agent_id="a1", simulation_id="s1", step_number=i, action_type="move")
            for i in range(5)]
    with pytest.raises(InvalidInput, match="record 5"):
        mem.actions.add_many([*good, {"agent_id": "a\u2060", "simulation_id": "s1",  # type: ignore[list-item]
                                      "step_number": 9, "action_type": "move"}])
    assert not list(r.scan_iter("agent:*"))


class _Note(agentmem.Record):
    note_id: str | None = None
    agent_id: agentmem.Identifier
    step: int
    text: str  # a plain str: pydantic accepts a lone surrogate in it


NOTES = agentmem.declare(_Note, key="n:{agent_id}:{note_id}", id="note_id",
                         id_template="{agent_id}-{step}",
                         indexes=[agentmem.SortedIndex("tl", "n:{agent_id}:tl", score="step")])


@pytest.mark.parametrize("path", ["add_many", "add_rows"])
def test_text_without_a_utf8_form_is_refused_before_any_call_is_sent(
        connect, r: redis.Redis, path: str) -> None:
    # 300 records in calls of 100, the bad one last: it used to fail while packing the
    # third call (UnicodeEncodeError, not an AgentMemError) with 200 records stored
    repo = connect(batch_size=100).repository(NOTES)
    notes = [_Note(agent_id="a", step=i, text="ok") for i in range(299)]
    notes.append(_Note(agent_id="a", step=999, text="x\ud800"))
    write = repo.add_many if path == "add_many" else (
        lambda ns: repo.add_rows([n.model_dump() for n in ns]))
    with pytest.raises(InvalidInput, match=r"299.*lone surrogate"):
        write(notes)
    assert not list(r.scan_iter("n:*"))
    assert repo.add(_Note(agent_id="a", step=1, text="héllo 😀")).text == "héllo 😀"


def test_a_position_whose_cell_is_beyond_every_float_is_stored_in_the_edge_cell(
        connect, r: redis.Redis) -> None:
    # 1.7e308 / grid_cell 0.001 is infinite: the cell's code raised OverflowError (not an
    # AgentMemError) while the third call was built, after 200 records were stored
    mem = connect(batch_size=100, grid_cell=0.001)
    acts = [Action(agent_id="a1", simulation_id="s1", step_number=i, action_type="move",
                   position=(1.0, 2.0)) for i in range(250)]
    acts.append(Action(agent_id="a1", simulation_id="s1", step_number=999,
                       action_type="move", position=(1.7e308, 2.0)))
    assert len(mem.actions.add_many(acts)) == 251
    assert [n.distance for n in mem.actions.near("a1", 1.7e308, 2.0, 1.0)] == [0.0]
    assert integrity.check(mem).clean


def test_a_bad_id_given_to_a_read_is_named_id_in_the_message(mem: agentmem.Memory) -> None:
    """get/get_many/exists/delete with an id that cannot be in a key said "i 'a:b'
    contains ':'" (the placeholder's name), on the blocking and the asyncio API alike."""
    for call in (lambda: mem.actions.get("a:b", agent_id="a1"),
                 lambda: mem.actions.get_many(["ok", "a b"], agent_id="a1"),
                 lambda: mem.im_actions.get("a{b", agent_id="a1")):
        with pytest.raises(InvalidId, match=r"^id '.*' contains "):
            call()
