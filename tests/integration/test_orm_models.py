"""The ORM verbs on a declared model: update moves set, counter, list and sorted-set
entries; delete removes them all (values no record has any more included); pages of
``range`` and ``members``; and ``Store.delete(..., archive=True)``."""

from __future__ import annotations

import pytest

import agentmem
from agentmem import (
    CounterIndex,
    Identifier,
    InvalidInput,
    ListIndex,
    NotFound,
    Record,
    SetIndex,
    SortedIndex,
    declare,
)
from tests.integration.test_orm_verbs import dump


class Snap(Record):
    snap_id: str | None = None
    agent_id: Identifier
    sim: Identifier
    step: int
    health: float
    mood: str = "calm"


SNAPS = declare(
    Snap, key="agent:{agent_id}:snap:{snap_id}", id="snap_id", id_template="{agent_id}-{step}",
    indexes=[
        SortedIndex("by_step", "agent:{agent_id}:snap:timeline", score="step"),
        SortedIndex("by_health", "agent:{agent_id}:snap:health", score="health"),
        SetIndex("by_mood", "agent:{agent_id}:snap:mood:{mood}"),
        SetIndex("mood_ids", "sim:{sim}:mood:{mood}"),
        SortedIndex("moods_seen", "sim:{sim}:moods", score="step", member="mood"),
        ListIndex("log", "sim:{sim}:snaps"),
        CounterIndex("moods", "sim:{sim}:moodcount", field="mood"),
    ],
)


def snaps() -> list[Snap]:
    return [Snap(agent_id="a", sim="s", step=i, health=i / 10, mood=("calm", "sad")[i % 2])
            for i in range(8)]


def test_update_and_delete_a_declared_model(r, mem):
    repo = mem.repository(SNAPS)
    data = repo.add_many(snaps())
    changed = data[3].model_copy(update={"mood": "glad", "health": 0.95})
    out = repo.update(Snap.model_validate(changed.model_dump()))
    assert repo.get("a-3", agent_id="a") == out
    after = dump(r)
    r.flushdb()
    repo.add_many([Snap.model_validate(changed.model_dump()) if s.step == 3 else s
                   for s in snaps()])
    assert dump(r) == after
    # the last 'glad' record goes: the value leaves moods_seen and the counter
    assert repo.delete("a-3", agent_id="a") is True
    assert r.zscore("sim:s:moods", "glad") is None
    assert r.hget("sim:s:moodcount", "glad") is None
    assert r.zscore("sim:s:moods", "sad") is not None
    assert b"a-3" not in r.lrange("sim:s:snaps", 0, -1)
    assert repo.exists("a-3", agent_id="a") is False
    assert repo.delete("a-3", agent_id="a") is False
    for s in repo.range("by_step", agent_id="a"):
        assert repo.delete(s.snap_id, agent_id="a")
    assert [k for k in r.keys("*") if not k.startswith(b"agentmem:")] == []


def test_declared_refusals(mem):
    repo = mem.repository(SNAPS)
    a = repo.add(Snap(agent_id="a", sim="s", step=1, health=0.5))
    with pytest.raises(InvalidInput, match="step"):
        repo.update(Snap.model_validate({**a.model_dump(), "step": 2}))
    with pytest.raises(NotFound):
        repo.update(Snap(snap_id="a-9", agent_id="a", sim="s", step=9, health=0.1))


def test_pages_of_range_and_members(mem):
    repo = mem.repository(SNAPS)
    repo.add_many([Snap(agent_id="a", sim="s", step=i, health=(i * 7 % 10) / 10,
                        mood=("calm", "sad", "glad")[i % 3]) for i in range(400)])
    for query, args, kwargs, want in [
        ("range", ("by_health",), {"min": 0.2, "newest_first": True},
         repo.range("by_health", min=0.2, newest_first=True, agent_id="a")),
        ("members", ("by_mood",), {"order_by": "by_step", "mood": "sad"},
         repo.members("by_mood", order_by="by_step", agent_id="a", mood="sad")),
    ]:
        for size in (1, 9, 500):
            got, cursor = [], None
            while True:
                page = repo.page(query, *args, cursor=cursor, size=size, agent_id="a", **kwargs)
                got += page.items
                cursor = page.cursor
                if cursor is None:
                    break
            assert got == want


async def test_async_declared(amem):
    repo = amem.repository(SNAPS)
    a = await repo.add(Snap(agent_id="a", sim="s", step=1, health=0.5))
    b = await repo.update(Snap.model_validate({**a.model_dump(), "health": 0.7}))
    assert (await repo.page("range", "by_health", agent_id="a")).items == [b]
    assert await repo.exists("a-1", agent_id="a")
    assert await repo.delete("a-1", agent_id="a")


def test_store_delete_with_archive(server, r, tmp_path):
    with agentmem.open(server.url, archive_url=str(tmp_path / "a.db")) as store:
        store.record(agent_id="a1", simulation_id="s1", step_number=1, action_type="move")
        store.record(agent_id="a1", simulation_id="s1", step_number=2, action_type="move")
        store.flush()
        assert store.archive is not None
        assert store.archive.count("s1") == 2
        assert store.delete("a1-1-move", archive=True) is True
        assert store.archive.count("s1") == 1
        assert store.actions.get("a1-1-move") is None
        assert store.delete("a1-1-move", archive=True, simulation_id="s1") is False
        r.delete("agent:a1:action:a1-2-move")  # only in the archive now
        assert store.delete("a1-2-move", archive=True, simulation_id="s1") is True
        assert store.archive.count("s1") == 0
