"""An id, once given, is never given to another action of that agent and simulation
(issue 17, item 1): after a tier transition, an eviction, or a Redis that restarted
empty. Real Redis (and Valkey), real SQLite; the archive must end with every action,
none refused as a duplicate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.ids import IDS_KEY
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import DuplicateId
from agentmem.servers.local import LocalServer
from agentmem.tiers.maintenance import TierPolicy, Tiers

SIM = "s_life"


def act(step: int, reward: float, sim: str = SIM, kind: str = "move") -> Action:
    return Action(agent_id="a1", simulation_id=sim, step_number=step, action_type=kind,
                  reward=reward)


def test_after_a_transition_the_id_is_not_given_again(mem: agentmem.Memory,
                                                      r: redis.Redis) -> None:
    first = mem.actions.add(act(5, 1.0))
    assert first.action_id == "a1-5-move"
    assert Tiers(mem).transition("a1", ["a1-5-move"]) == ["a1-5-move"]
    assert r.hget("agent:a1:retired", SIM) == b"5"
    again = mem.actions.add(act(5, 2.0))  # a late write of the same step and type
    assert again.action_id == "a1-5-move.r1"
    later = mem.actions.add_many([act(4, 3.0), act(6, 4.0)])
    assert [a.action_id for a in later] == ["a1-4-move.r2", "a1-6-move"]
    im = mem.im_actions.get("a1-5-move", agent_id="a1")
    assert im is not None
    assert im.reward == 1.0


def test_an_explicit_id_intermediate_memory_holds_is_refused(mem: agentmem.Memory,
                                                              r: redis.Redis) -> None:
    """An id given by the caller that left STM for IM is taken, as one in STM is: it was
    stored in STM again, one id in both tiers (the archive's load did that)."""
    mem.actions.add(act(5, 1.0))
    Tiers(mem).transition("a1", ["a1-5-move"])
    again = act(5, 2.0).model_copy(update={"action_id": "a1-5-move"})
    with pytest.raises(DuplicateId, match="record 0"):
        mem.actions.add(again)
    with pytest.raises(DuplicateId) as info:  # refused alone, as any taken explicit id
        mem.actions.add_many([act(7, 3.0), again])
    assert info.value.failed.keys() == {1}
    assert [a.action_id for a in mem.actions.timeline("a1")] == ["a1-7-move"]
    assert not r.exists("agent:a1:action:a1-5-move")
    fresh = act(9, 4.0).model_copy(update={"action_id": "a1-9-move"})
    assert mem.actions.add(fresh).action_id == "a1-9-move"  # not in IM: stored


def test_another_simulation_gets_no_id_intermediate_memory_holds(mem: agentmem.Memory,
                                                                  r: redis.Redis) -> None:
    """The agent's keys hold one action per id, whatever its simulation: an id IM holds
    (another simulation's action that left STM) is taken, as one in STM is, and the
    action gets the next free id (not a retired one: its own simulation retired none)."""
    mem.actions.add(act(5, 1.0))
    Tiers(mem).transition("a1", ["a1-5-move"])
    other = mem.actions.add(act(5, 2.0, sim="s_other"))
    assert other.action_id == "a1-5-move.1"
    both = mem.actions.add_many([act(5, 3.0, sim="s_third"), act(6, 4.0, sim="s_other")])
    assert [a.action_id for a in both] == ["a1-5-move.2", "a1-6-move"]
    assert Tiers(mem).transition("a1", ["a1-5-move.1", "a1-5-move.2"]) == [
        "a1-5-move.1", "a1-5-move.2"]
    held = {k.decode(): r.hget(k, "simulation_id") for k in r.scan_iter("agent:a1:im:action:*")
            if not k.endswith(b"timeline")}
    assert held == {"agent:a1:im:action:a1-5-move": SIM.encode(),
                    "agent:a1:im:action:a1-5-move.1": b"s_other",
                    "agent:a1:im:action:a1-5-move.2": b"s_third"}


def test_after_eviction_with_a_dual_writer_every_action_is_archived(
        mem: agentmem.Memory, tmp_path: Path) -> None:
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        w.add_many([act(s, float(s)) for s in range(10)])
        w.flush()
        tiers = Tiers(mem, TierPolicy(stm_steps=2, im_capacity=1), archive=archive)
        report = tiers.maintain(now_step=9)
        assert report.evicted >= 1
        replayed = w.add_many([act(s, 100.0 + s) for s in range(10)])  # the steps again
        assert replayed is not None
        assert all(".r" in str(a.action_id) for a in replayed[:8])  # steps 0..7 left STM
        w.close()  # no DuplicateId: every id is new
        got = archive.read(SIM)
        assert sorted(float(a.reward or 0) for a in got) == sorted(
            [float(s) for s in range(10)] + [100.0 + s for s in range(10)])
        assert len({a.action_id for a in got}) == 20


@pytest.fixture
def lonely(tmp_path: Path) -> Iterator[LocalServer]:
    """A server of the test's own, without persistence: a restart comes back empty."""
    srv = LocalServer("redis", directory=tmp_path / "redis").start()
    yield srv
    srv.close()


def test_a_redis_that_restarted_empty_gives_no_archived_id_again(
        lonely: LocalServer, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with open_archive(db) as archive:
        mem = agentmem.connect(lonely.url)
        w = DualWriter(mem, archive)
        w.add_many([act(s, float(s)) for s in range(5)])
        w.add(act(4, 9.0))  # a1-4-move.1
        Tiers(mem).transition("a1", ["a1-1-move"])
        w.add(act(1, 10.0))  # a1-1-move.r1
        w.close()
        mem.close()
    lonely.stop()
    lonely.start()  # empty: no marks, no counter
    with open_archive(db) as archive:
        mem = agentmem.connect(lonely.url)
        w = DualWriter(mem, archive)  # seeds the marks from the archive
        assert redis.Redis.from_url(lonely.url).exists(IDS_KEY) == 1
        again = w.add_many([act(3, 20.0), act(4, 21.0), act(1, 22.0), act(7, 23.0)])
        assert again is not None
        assert [a.action_id for a in again] == [
            "a1-3-move.r2", "a1-4-move.r3", "a1-1-move.r4", "a1-7-move"]
        w.close()
        rows = archive.read(SIM)
        assert len(rows) == 11
        assert len({a.action_id for a in rows}) == 11
        mem.close()

