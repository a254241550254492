"""Review fixes, against real Redis and Valkey: an id stays unique for the life of the
data after integrity.repair removes an expired action's index entries (one server,
layouts 1-3, with a dual writer); an action without a reward keeps none in IM; and
``MaintainReport.missing`` counts timeline ids whose hash had expired.

A hash "expires" here by ``DEL``, which is what the TTL does to it (no sleeping)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.integrity import check, repair
from agentmem.model.records import IMAction
from agentmem.tiers.maintenance import TierPolicy, Tiers
from agentmem.tiers.reads import high_reward, history

SIM = "s1"


def act(step: int, reward: float | None = 1.0, sim: str = SIM, kind: str = "move") -> Action:
    return Action(agent_id="a1", simulation_id=sim, step_number=step, action_type=kind,
                  reward=reward)


def expire(r: redis.Redis, mem: agentmem.Memory, action_id: str) -> None:
    """What the action TTL does: the hash goes, every index keeps the id."""
    assert r.delete(mem.actions.layout.key("action", agent_id="a1", action_id=action_id)) == 1


@pytest.mark.parametrize("version", [1, 2, 3])
def test_repair_of_an_expired_actions_orphans_does_not_give_its_id_again(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, version: int) -> None:
    mem = connect(layout_version=version)
    lay = mem.actions.layout
    assert mem.actions.add(act(5)).action_id == "a1-5-move"
    expire(r, mem, "a1-5-move")
    fixed = repair(mem)
    assert fixed.orphans["timeline"] == 1
    assert fixed.orphans["sim_actions"] == 1
    assert check(mem).clean
    retired = lay.key("retired", agent_id="a1")
    assert r.hget(retired, SIM) == b"5"  # the simulation's mark, from its indices
    assert r.hget(retired, ":any") is None
    assert mem.actions.add(act(5)).action_id == "a1-5-move.r1"
    # another simulation's ids are their own: its step 5 keeps its natural id
    assert mem.actions.add(act(5, sim="s2")).action_id == "a1-5-move"
    assert mem.actions.add(act(6)).action_id == "a1-6-move"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_repair_raises_the_mark_of_the_ids_owner_not_of_an_agent_named_like_its_prefix(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, version: int) -> None:
    """``bob-3-7-move`` splits as agent ``bob-3`` step 7 or agent ``bob`` step 3: only the
    agent whose timeline holds it gets its mark raised."""
    mem = connect(layout_version=version)
    lay = mem.actions.layout
    gone = mem.actions.add(Action(agent_id="bob-3", simulation_id=SIM, step_number=7,
                                  action_type="move"))
    mem.actions.add(Action(agent_id="bob", simulation_id=SIM, step_number=1,
                           action_type="move"))
    r.delete(lay.key("action", agent_id="bob-3", action_id=str(gone.action_id)))
    repair(mem)
    assert r.hget(lay.key("retired", agent_id="bob-3"), SIM) == b"7"
    assert not r.exists(lay.key("retired", agent_id="bob"))
    assert mem.actions.add(Action(agent_id="bob", simulation_id=SIM, step_number=3,
                                  action_type="move")).action_id == "bob-3-move"
    assert mem.actions.add(Action(agent_id="bob-3", simulation_id=SIM, step_number=7,
                                  action_type="move")).action_id == "bob-3-7-move.r1"


def test_a_timeline_orphan_of_no_known_simulation_retires_its_step_everywhere(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """Only the agent's timeline names the id (its simulation-level entries went too):
    the mark ``:any`` covers every simulation, and the write script reads it."""
    mem.actions.add(act(5))
    lay = mem.actions.layout
    expire(r, mem, "a1-5-move")
    r.delete(lay.key("sim_actions", simulation_id=SIM),
             lay.key("sim_step", simulation_id=SIM, step_number=5),
             lay.key("sim_steps", simulation_id=SIM), lay.key("sim_by_type", simulation_id=SIM))
    fixed = repair(mem)
    assert fixed.orphans == {"timeline": 1, "types": 1, "rewards": 1, "relative_index": 1}
    retired = lay.key("retired", agent_id="a1")
    assert r.hget(retired, ":any") == b"5"
    assert r.hget(retired, SIM) is None
    assert [a.action_id for a in mem.actions.add_many([act(5), act(4, sim="s2"), act(6)])] == [
        "a1-5-move.r1", "a1-4-move.r2", "a1-6-move"]


def test_check_raises_no_mark(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add(act(5))
    expire(r, mem, "a1-5-move")
    assert check(mem).orphans["timeline"] == 1
    assert not r.exists(mem.actions.layout.key("retired", agent_id="a1"))
    assert mem.actions.add(act(5)).action_id == "a1-5-move.1"  # still in the timeline


def test_with_a_dual_writer_the_action_after_a_repair_is_archived(
        server: Any, r: redis.Redis, tmp_path: Path) -> None:
    db = tmp_path / "archive.db"
    store = agentmem.open(server.url, archive_url=str(db))
    try:
        first = store.record(agent_id="a1", simulation_id=SIM, step_number=5,
                             action_type="move", reward=1.0)
        store.flush()
        expire(r, store.memory, str(first.action_id))
        repair(store.memory)
        second = store.record(agent_id="a1", simulation_id=SIM, step_number=5,
                              action_type="move", reward=2.0)
        assert second.action_id == "a1-5-move.r1"
        store.flush()  # DuplicateId before the fix
    finally:
        store.close()
    with open_archive(db) as archive:
        assert sorted((str(a.action_id), a.reward) for a in archive.read(SIM)) == [
            ("a1-5-move", 1.0), ("a1-5-move.r1", 2.0)]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_moving_an_action_without_reward_to_im_keeps_it_without_reward(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, version: int) -> None:
    mem = connect(layout_version=version)
    mem.actions.add_many([act(s, None if s % 2 == 0 else -0.5) for s in range(4)])
    before = [str(a.action_id) for a in high_reward(mem, "a1", -1.0)]
    assert before == ["a1-3-move", "a1-1-move"]
    assert Tiers(mem, TierPolicy(stm_steps=1)).maintain(now_step=10).to_im == 4
    assert [str(a.action_id) for a in high_reward(mem, "a1", -1.0)] == before
    assert [(str(a.action_id), a.reward) for a in history(mem, "a1")] == [
        ("a1-0-move", None), ("a1-1-move", -0.5), ("a1-2-move", None), ("a1-3-move", -0.5)]
    lay = mem.actions.layout
    key = lay.key("im_action", agent_id="a1", action_id="a1-0-move")
    assert not r.hexists(key, lay.im_action.codec.wire("reward"))  # absent, not stored
    im = mem.im_actions.get("a1-0-move", agent_id="a1")
    assert isinstance(im, IMAction)
    assert im.reward is None


def test_im_data_written_with_reward_zero_still_reads(mem: agentmem.Memory,
                                                      r: redis.Redis) -> None:
    mem.actions.add(act(1, None))
    Tiers(mem).transition("a1", ["a1-1-move"])
    key = mem.actions.layout.key("im_action", agent_id="a1", action_id="a1-1-move")
    r.hset(key, "reward", "0")  # as moves before this fix wrote it
    im = mem.im_actions.get("a1-1-move", agent_id="a1")
    assert im is not None
    assert im.reward == 0.0


def test_maintain_counts_timeline_ids_whose_hash_expired(mem: agentmem.Memory,
                                                         r: redis.Redis) -> None:
    mem.actions.add_many([act(s) for s in range(3)])
    for s in range(3):
        expire(r, mem, f"a1-{s}-move")
    mem.actions.add(act(10))
    report = Tiers(mem, TierPolicy(stm_steps=2)).maintain()
    assert report.missing == 3
    assert report.to_im == 0
    # maintain leaves them in the timeline (integrity.repair removes them, raising the
    # marks): meanwhile their ids are not given again
    assert r.zcard(mem.actions.layout.key("timeline", agent_id="a1")) == 4
    assert mem.actions.add(act(0)).action_id == "a1-0-move.1"
    assert Tiers(mem, TierPolicy(stm_steps=2)).plan().missing == 3
