"""Batches: many operations of any repositories in one round trip (issue 19 item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from _support import act, ids
from pydantic import BaseModel

import agentmem
from agentmem.backends.redis import AsyncRedisRunner, RedisRunner
from agentmem.errors import DuplicateId, InvalidInput, NotRun, Unavailable
from agentmem.model.records import IMAction
from agentmem.model.schema import SetIndex, declare

AGENTS = [f"a{i}" for i in range(6)]
TYPES = ["move", "eat", "attack"]


def history() -> list[agentmem.Action]:
    return [act(a, step, TYPES[(step + n) % 3], reward=step / 10)
            for n, a in enumerate(AGENTS) for step in range(15)]


def round_trips(monkeypatch: pytest.MonkeyPatch, runner: type[Any]) -> list[int]:
    """Counts the runner's round trips: each ``_send`` writes calls to one connection,
    then reads all their replies."""
    count = [0]
    send = runner._send

    def counted(self: Any, *args: Any) -> Any:
        count[0] += 1
        return send(self, *args)

    monkeypatch.setattr(runner, "_send", counted)
    return count


def test_batch_results_equal_the_individual_calls(mem):
    mem.actions.add_many(history())
    with mem.batch() as b:
        recent = {a: b.actions.recent(a, 10) for a in AGENTS}
        moves = {a: b.actions.by_type(a, "move", limit=4) for a in AGENTS}
        counts = b.actions.type_counts("sim01")
        rel = b.actions.relative("a2", -3)
        assert len(b) == 2 * len(AGENTS) + 2
    for a in AGENTS:
        assert recent[a].result() == mem.actions.recent(a, 10)
        assert moves[a].result() == mem.actions.by_type(a, "move", limit=4)
    assert counts.result() == mem.actions.type_counts("sim01")
    assert rel.result() == mem.actions.relative("a2", -3)
    assert len(recent["a0"].result()) == 10


def test_one_round_trip_for_every_call(mem, counted, monkeypatch):
    store, proxy = counted
    store.actions.add_many(history())
    with store.batch() as warm:  # the layout check and the scripts' loads behind us
        warm.actions.recent("a0", 1)
        warm.actions.by_type("a0", "eat", limit=1)
        warm.actions.add(act("a0", 98, "rest"))
    trips = round_trips(monkeypatch, RedisRunner)
    proxy.reset()
    with store.batch() as b:
        handles = [b.actions.recent(a, 10) for a in AGENTS]
        handles += [b.actions.by_type(a, "eat", limit=5) for a in AGENTS]
        handles.append(b.actions.add(act("a0", 99, "rest")))
    assert trips[0] == 1
    assert proxy.commands == len(handles)  # one call each, all on that one round trip
    assert all(h.done for h in handles)


def test_errors_stay_with_their_handle(mem):
    mem.actions.add(act("a1", 1, action_id="a1-1-taken"))
    with mem.batch() as b:
        before = b.actions.recent("a1", 5)
        dup = b.actions.add(act("a1", 1, action_id="a1-1-taken"))
        ok = b.actions.add(act("a1", 3))
        missing = b.actions.update(act("a9", 1, action_id="a9-1-nobody"))
    with pytest.raises(DuplicateId):
        dup.result()
    assert isinstance(dup.exception(), DuplicateId)
    with pytest.raises(agentmem.NotFound):
        missing.result()
    assert ok.result().action_id == "a1-3-move"
    assert ids(before.result()) == ["a1-1-taken"]
    assert ok.exception() is None
    assert ids(mem.actions.recent("a1", 5)) == ["a1-3-move", "a1-1-taken"]


def test_bad_input_raises_at_the_call_and_queues_nothing(mem):
    b = mem.batch()
    with pytest.raises(InvalidInput):
        b.actions.recent("a1", -1)
    with pytest.raises(InvalidInput):
        b.actions.add("not an action")  # type: ignore[arg-type]
    assert len(b) == 0
    h = b.actions.recent("a1", 2)
    b.run()
    assert h.result() == []


def test_a_handle_before_the_run_raises_not_run(mem):
    b = mem.batch()
    h = b.actions.recent("a1", 3)
    assert not h.done
    with pytest.raises(NotRun, match="not run yet"):
        h.result()
    with pytest.raises(agentmem.AgentMemError):
        h.exception()
    b.run()
    assert h.result() == []
    assert len(b) == 0
    b.run()  # an empty batch sends nothing


def test_a_with_block_that_raises_sends_nothing(mem):
    handles = []

    def body() -> None:
        with mem.batch() as b:
            handles.append(b.actions.add(act("a1", 1)))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        body()
    [h] = handles
    with pytest.raises(NotRun, match="did not run"):
        h.result()
    assert mem.actions.recent("a1", 5) == []


def test_writes_and_reads_mixed_keep_their_order(mem):
    with mem.batch() as b:
        empty = b.actions.recent("a1", 5)
        first = b.actions.add(act("a1", 1, "move"))
        after_one = b.actions.recent("a1", 5)
        many = b.actions.add_many([act("a1", 2, "eat"), act("a2", 2, "eat")])
        after_all = b.actions.by_type("a1", "eat", limit=5)
        deleted = b.actions.delete("a1-1-move", agent_id="a1")
        after_delete = b.actions.recent("a1", 5)
    assert empty.result() == []
    assert first.result().action_id == "a1-1-move"
    assert ids(after_one.result()) == ["a1-1-move"]
    assert ids(many.result()) == ["a1-2-eat", "a2-2-eat"]
    assert ids(after_all.result()) == ["a1-2-eat"]
    assert deleted.result() is True
    assert ids(after_delete.result()) == ["a1-2-eat"]


def test_any_repository_in_one_batch(mem):
    notes = declare(Note, key="note:{note_id}", id="note_id",
                    indexes=[SetIndex("by_agent", "notes:of:{agent}")])
    im = IMAction(action_id="x1", agent_id="a1", simulation_id="sim01", step_number=1,
                  action_type="move")
    with mem.batch() as b:
        note = b.repository(notes).add(Note(note_id="n1", agent="a1", text="hi"))
        stored_im = b.im_actions.add(im)
        act_h = b.actions.add(act("a1", 1))
        got = b.repository(notes).get("n1")
    assert note.result().note_id == "n1"
    assert got.result() == note.result()
    assert stored_im.result().action_id == "x1"
    assert mem.im_actions.get("x1", agent_id="a1") == stored_im.result()
    assert act_h.result() == mem.actions.get("a1-1-move", agent_id="a1")


class Note(BaseModel):
    note_id: str
    agent: str
    text: str


def test_a_follow_up_runs_after_the_batch(mem, monkeypatch):
    """A store's first write of positions checks the grid cell first (a follow-up): the
    write lands one round trip later, after the batch's other calls."""
    mem.actions.recent("a0", 1)
    trips = round_trips(monkeypatch, RedisRunner)
    with mem.batch() as b:
        placed = b.actions.add(act("a1", 1, position=(1.0, 2.0)))
        seen = b.actions.recent("a1", 5)
    assert trips[0] == 2
    assert placed.result().position == (1.0, 2.0)
    assert seen.result() == []  # read before the write's follow-up ran
    with mem.batch() as b:  # the cell is known now (the store's repository learned it)
        b.actions.add(act("a1", 2, position=(1.0, 2.0)))
        seen = b.actions.recent("a1", 5)
    assert trips[0] == 3
    assert ids(seen.result()) == ["a1-2-move", "a1-1-move"]


def test_new_scripts_are_loaded_in_the_same_round_trip(mem, r, monkeypatch):
    """On a server that has not seen the scripts, every call still runs in its place
    (the scripts are loaded first, on the same pipeline)."""
    mem.actions.recent("a0", 1)
    r.script_flush()
    trips = round_trips(monkeypatch, RedisRunner)
    with mem.batch() as b:
        b.actions.add(act("a1", 1))
        gone = b.actions.delete("a1-1-move", agent_id="a1")
        after = b.actions.recent("a1", 5)
    assert trips[0] == 1
    assert gone.result() is True
    assert after.result() == []


def test_scripts_flushed_after_a_batch_loaded_them_keep_the_order(mem, r):
    """The store's batches sent the scripts once; after a SCRIPT FLUSH (or a server
    restart), a write refused with NOSCRIPT must not run after the reads that follow it."""
    with mem.batch() as b:  # the batches' scripts are known to be sent
        b.actions.add(act("a1", 1))
        b.actions.recent("a1", 1)
    r.script_flush()
    with mem.batch() as b:
        b.actions.add(act("a1", 2, "eat"))
        counts = b.actions.type_counts("sim01")  # a command, not a script
    assert counts.result() == {"move": 1, "eat": 1}
    r.script_flush()
    with mem.batch() as b:
        b.actions.add(act("a1", 3, "eat"))
        eats = b.actions.by_type("a1", "eat", limit=5)  # a script this store's batches
    assert ids(eats.result()) == ["a1-3-eat", "a1-2-eat"]  # had not sent: loaded first


def test_an_unreachable_server_fails_every_handle():
    from agentmem.servers.local import free_port

    mem = agentmem.connect(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    b = mem.batch()
    h = b.actions.recent("a1", 3)
    with pytest.raises(Unavailable):
        b.run()
    with pytest.raises(Unavailable):
        h.result()
    mem.close()


def test_store_batch(server, r):
    with agentmem.open(server.url, dual_write=False) as store, store.batch() as b:
        h = b.actions.add(act("a1", 1))
    assert h.result().action_id == "a1-1-move"
    assert r.exists("agent:a1:action:a1-1-move")


async def test_async_batch(amem, monkeypatch):
    await amem.actions.add_many(history())
    expected = {a: await amem.actions.recent(a, 10) for a in AGENTS}
    trips = round_trips(monkeypatch, AsyncRedisRunner)
    async with amem.batch() as b:
        recent = {a: b.actions.recent(a, 10) for a in AGENTS}
        added = b.actions.add(act("a0", 50, "rest"))
        after = b.actions.by_type("a0", "rest", limit=2)
        dup = b.actions.add(act("a0", 50, action_id="a0-50-rest"))
    assert trips[0] == 1
    for a in AGENTS:
        assert recent[a].result() == expected[a]
    assert ids(after.result()) == [added.result().action_id]
    with pytest.raises(DuplicateId):
        dup.result()
    b2 = amem.batch()
    h = b2.actions.recent("a0", 1)
    with pytest.raises(NotRun):
        h.result()
    await b2.run()
    assert ids(h.result()) == ["a0-50-rest"]
