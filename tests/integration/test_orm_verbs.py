"""The ORM verbs on actions: delete (every index, every tier), update (re-indexes what
changed), exists, get by action id alone, and cursor pages of every listing query;
blocking and asyncio, against real servers. Declared models: test_orm_models.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis

from agentmem import Action, IMAction, InvalidInput, NotFound

SIM = "s1"


def dump(r: redis.Redis, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every key's content (hash write times left out)."""
    out: dict[str, Any] = {}
    for k in sorted(r.keys("*")):
        name = k.decode()
        if name.startswith("agentmem:") or any(s in name for s in skip):
            continue
        t = r.type(k).decode()
        if t == "hash":
            v: Any = {f: x for f, x in r.hgetall(k).items() if f != b"stored_at"}
        elif t == "zset":
            v = r.zrange(k, 0, -1, withscores=True)
        elif t == "set":
            v = sorted(r.smembers(k))
        elif t == "list":
            v = r.lrange(k, 0, -1)
        else:
            v = r.get(k)
        out[name] = v
    return out


def actions() -> list[Action]:
    out = []
    for step in range(6):
        for agent in ("a1", "b-2"):
            out.append(Action(agent_id=agent, simulation_id=SIM, step_number=step,
                              action_type="move" if step % 2 else "attack",
                              action_target_id="t1" if step % 3 == 0 else None,
                              reward=step / 10 if step != 4 else None,
                              position=(float(step), 1.0) if step != 2 else None,
                              details={"n": step}))
    return out


@pytest.mark.parametrize("layout", [1, 2])
def test_delete_leaves_what_writing_the_others_leaves(r, connect, layout):
    m = connect(layout_version=layout)
    data = actions()
    m.actions.add_many(data)
    for victim in ("a1-3-move", "b-2-0-attack", "a1-2-attack"):
        agent = victim.rsplit("-", 2)[0]
        assert m.actions.delete(victim, agent_id=agent) is True
    after = dump(r, skip=("retired",))
    r.flushdb()
    m2 = connect(layout_version=layout)
    m2.actions.add_many([a for a in data if f"{a.agent_id}-{a.step_number}-{a.action_type}"
                         not in ("a1-3-move", "b-2-0-attack", "a1-2-attack")])
    assert dump(r, skip=("retired",)) == after


def test_delete_missing_and_twice(mem):
    assert mem.actions.delete("a1-1-move", agent_id="a1") is False
    mem.actions.record(agent_id="a1", simulation_id=SIM, step_number=1, action_type="move")
    assert mem.actions.delete("a1-1-move") is True
    assert mem.actions.delete("a1-1-move") is False
    assert mem.actions.delete("nonsense") is False


def test_delete_keeps_the_id_retired(mem):
    mem.actions.record(agent_id="a1", simulation_id=SIM, step_number=3, action_type="move")
    assert mem.actions.delete("a1-3-move", agent_id="a1")
    again = mem.actions.record(agent_id="a1", simulation_id=SIM, step_number=3,
                               action_type="move")
    assert again.action_id != "a1-3-move"


def test_delete_covers_intermediate_memory_and_pins(r, mem):
    im = IMAction(action_id="a1-1-move", simulation_id=SIM, step_number=1, agent_id="a1",
                  action_type="move", reward=0.5, importance=0.3)
    mem.im_actions.add(im)
    r.sadd("agent:a1:pinned", "a1-1-move", "a1-2-move")
    assert mem.actions.delete("a1-1-move", agent_id="a1") is True
    assert not r.exists("agent:a1:im:action:a1-1-move")
    assert r.zrange("agent:a1:im:action:timeline", 0, -1) == []
    assert r.smembers("agent:a1:pinned") == {b"a1-2-move"}


def test_get_exists_by_id_alone(mem):
    a = mem.actions.record(agent_id="x-1", simulation_id=SIM, step_number=5, action_type="move")
    b = mem.actions.record(agent_id="x", simulation_id="s2", step_number=1, action_type="go")
    assert mem.actions.get("x-1-5-move") == a
    assert mem.actions.get("x-1-go") == b
    assert mem.actions.get("x-1-5-move", simulation_id=SIM) == a
    assert mem.actions.get("x-1-5-move", simulation_id="s2") is None
    assert mem.actions.get("x-1-5-move", agent_id="x-1") == a
    assert mem.actions.get("zzz") is None
    assert mem.actions.exists("x-1-5-move") is True
    assert mem.actions.exists("x-1-5-move", agent_id="x") is False
    assert mem.actions.exists("x-1-5-move", simulation_id="s2") is False
    assert mem.actions.exists("x-1-6-move") is False


def test_update_reindexes_what_changed(r, connect):
    m = connect()
    data = actions()
    m.actions.add_many(data)
    stored = m.actions.get("a1-3-move", agent_id="a1")
    ttl = r.ttl("agent:a1:action:a1-3-move")
    new = stored.model_copy(update={"reward": -1.0, "action_target_id": "t9",
                                    "position": (7.5, -2.0), "details": {"x": 1},
                                    "embedding": np.ones(3, dtype=np.float32)})
    new = Action.model_validate(new.model_dump())
    out = m.actions.update(new)
    assert out.stored_at == stored.stored_at
    assert m.actions.get("a1-3-move", agent_id="a1") == out
    assert 0 < r.ttl("agent:a1:action:a1-3-move") <= ttl
    after = dump(r)
    r.flushdb()
    m2 = connect()
    m2.actions.add_many([new if (a.agent_id, a.step_number) == ("a1", 3) else a for a in data])
    assert dump(r) == after
    # removing values: the entries go
    bare = Action.model_validate({**new.model_dump(), "reward": None, "position": None,
                                  "action_target_id": None})
    m.actions.update(bare)
    assert r.zscore("agent:a1:action:rewards", "a1-3-move") is None
    assert r.zscore("agent:a1:action:grid", "a1-3-move") is None
    assert r.zscore("simulation:s1:actions:3:grid", "a1-3-move") is None
    assert not r.sismember("agent:a1:action:targets:t9", "a1-3-move")


def test_update_refusals(r, mem):
    a = mem.actions.record(agent_id="a1", simulation_id=SIM, step_number=1, action_type="move")
    before = dump(r)
    with pytest.raises(NotFound):
        mem.actions.update(Action(agent_id="a1", simulation_id=SIM, step_number=2,
                                  action_type="move", action_id="a1-2-move"))
    with pytest.raises(InvalidInput, match="simulation_id"):
        mem.actions.update(Action.model_validate({**a.model_dump(), "simulation_id": "s9"}))
    with pytest.raises(InvalidInput, match="needs the record's action_id"):
        mem.actions.update(Action(agent_id="a1", simulation_id=SIM, step_number=1,
                                  action_type="move"))
    with pytest.raises(InvalidInput):
        mem.actions.update(Action.model_validate({**a.model_dump(), "step_number": 7}))
    assert dump(r) == before


PAGED = [
    ("recent", ("a1",), {}, lambda m: m.actions.recent("a1", 10**6)),
    ("timeline", ("a1",), {}, lambda m: m.actions.timeline("a1")),
    ("timeline", ("a1", 2, 30), {"newest_first": True},
     lambda m: m.actions.timeline("a1", 2, 30, newest_first=True)),
    ("by_type", ("a1", "move"), {}, lambda m: m.actions.by_type("a1", "move")),
    ("by_target", ("a1", "t1"), {}, lambda m: m.actions.by_target("a1", "t1")),
    ("high_reward", ("a1", 0.2), {}, lambda m: m.actions.high_reward("a1", 0.2, limit=None)),
    ("successful_interactions", ("a1", "t1"), {},
     lambda m: m.actions.successful_interactions("a1", "t1", limit=None)),
    ("at_step", (SIM, 4), {}, lambda m: m.actions.at_step(SIM, 4)),
    ("simulation_actions", (SIM,), {}, lambda m: m.actions.simulation_actions(SIM)),
    ("range", ("rewards",), {"min": 0.1, "agent_id": "a1"},
     lambda m: m.actions.range("rewards", min=0.1, agent_id="a1")),
    ("members", ("types",), {"order_by": "timeline", "agent_id": "a1", "action_type": "move"},
     lambda m: m.actions.members("types", order_by="timeline", agent_id="a1",
                                 action_type="move")),
    ("members", ("types",), {"agent_id": "a1", "action_type": "move"},
     lambda m: sorted(m.actions.members("types", agent_id="a1", action_type="move"),
                      key=lambda a: a.action_id)),
]


def many(n: int = 700) -> list[Action]:
    out = []
    for i in range(n):
        out.append(Action(agent_id="a1" if i % 7 else "b-1", simulation_id=SIM,
                          step_number=i // 3, action_type=("move", "eat", "go")[i % 3],
                          action_target_id="t1" if i % 5 == 0 else None,
                          reward=((i * 37) % 11) / 10 - 0.3))
    return out


def walk(m: Any, query: str, args: tuple[Any, ...], kwargs: dict[str, Any], size: int
         ) -> list[Action]:
    out: list[Action] = []
    cursor = None
    while True:
        page = m.actions.page(query, *args, cursor=cursor, size=size, **kwargs)
        assert len(page.items) <= size
        out += page.items
        if page.cursor is None:
            return out
        cursor = page.cursor


@pytest.mark.parametrize(("query", "args", "kwargs", "full"), PAGED,
                         ids=[f"{p[0]}{n}" for n, p in enumerate(PAGED)])
def test_pages_equal_the_query(r, mem, query, args, kwargs, full):
    mem.actions.add_many(many())
    r.delete("agent:a1:action:a1-10-eat", "agent:a1:action:a1-99-move")  # expired
    want = full(mem)
    assert want
    for size in (1, 7, 128, 1000):
        assert walk(mem, query, args, kwargs, size) == want


def test_pages_are_stable_under_inserts(mem):
    mem.actions.add_many(many(300))
    before = {a.action_id for a in mem.actions.by_type("a1", "move")}
    page = mem.actions.page("by_type", "a1", "move", size=10)
    seen = [a.action_id for a in page.items]
    cursor = page.cursor
    extra = [Action(agent_id="a1", simulation_id=SIM, step_number=s, action_type="move")
             for s in (0, 50, 10**6)]
    mem.actions.add_many(extra)
    while cursor is not None:
        page = mem.actions.page("by_type", "a1", "move", cursor=cursor, size=10)
        seen += [a.action_id for a in page.items]
        cursor = page.cursor
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_page_refusals(mem):
    with pytest.raises(InvalidInput):
        mem.actions.page("recent", "a1", size=0)
    with pytest.raises(InvalidInput):
        mem.actions.page("recent", "a1", cursor="nonsense")
    with pytest.raises(InvalidInput):
        mem.actions.page("near", "a1")


def test_one_round_trip_each(counted):
    m, proxy = counted
    m.actions.add_many(many(50))
    before = proxy.commands
    m.actions.exists("a1-1-go")
    m.actions.page("by_type", "a1", "move", size=5)
    m.actions.delete("a1-1-go", agent_id="a1")
    a = m.actions.get("a1-2-go")
    assert proxy.commands - before == 4
    before = proxy.commands
    m.actions.update(Action.model_validate({**a.model_dump(), "reward": 3.0}))
    assert proxy.commands - before == 1


async def test_async_verbs(amem):
    a = await amem.actions.record(agent_id="a1", simulation_id=SIM, step_number=1,
                                  action_type="move", reward=0.1)
    assert await amem.actions.exists("a1-1-move")
    assert await amem.actions.get("a1-1-move") == a
    b = await amem.actions.update(Action.model_validate({**a.model_dump(), "reward": 0.9}))
    assert (await amem.actions.high_reward("a1", 0.5)) == [b]
    page = await amem.actions.page("recent", "a1", size=1)
    assert page.items == [b]
    assert page.cursor is None
    assert await amem.actions.delete("a1-1-move") is True
    assert await amem.actions.exists("a1-1-move") is False


def test_delete_with_another_simulation_deletes_nothing(mem):
    """delete honours simulation_id as get does: an action of another simulation stays."""
    from agentmem import Action

    stored = mem.actions.add(Action(agent_id="b1", simulation_id="simA", step_number=1,
                                    action_type="move"))
    assert mem.actions.get(stored.action_id, agent_id="b1", simulation_id="simB") is None
    assert mem.actions.delete(stored.action_id, agent_id="b1", simulation_id="simB") is False
    assert mem.actions.delete(stored.action_id, simulation_id="simB") is False
    assert mem.actions.get(stored.action_id, agent_id="b1") == stored
    assert mem.actions.delete(stored.action_id, simulation_id="simA") is True
    assert mem.actions.get(stored.action_id, agent_id="b1") is None
