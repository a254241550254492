"""Reads across the tiers when hashes are gone, and one action id in two simulations,
against real Redis and Valkey; the archive is a SQLite file of the test's own.

A hash "gone" is deleted with ``DEL``, which leaves the same state as its TTL firing
(the timeline entry stays, the hash does not) without waiting on a clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action, IMAction
from agentmem.backends import sqlreads
from agentmem.backends.archivedelete import write_updating
from agentmem.backends.sql import Archive, open_archive
from agentmem.errors import AgentMemError
from agentmem.tiers import reads
from agentmem.tiers.maintenance import TierPolicy, Tiers
from agentmem.tiers.reads import find, history, recent, relative

SIM = "sim_r"
LAYOUTS = [1, 2, 3]


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with open_archive(tmp_path / "archive.db") as a:
        yield a


def act(step: int, kind: str = "move", agent: str = "a1", sim: str = SIM, **kw: Any
        ) -> Action:
    return Action(agent_id=agent, simulation_id=sim, step_number=step, action_type=kind, **kw)


def im_act(step: int, kind: str = "move", agent: str = "a1") -> IMAction:
    return IMAction(action_id=f"{agent}-{step}-{kind}", agent_id=agent, simulation_id=SIM,
                    step_number=step, action_type=kind)


def gone(mem: agentmem.Memory, r: redis.Redis, *ids: str, tier: str = "action",
         agent: str = "a1") -> None:
    """Delete the hashes of ``ids`` (of STM, or of IM with tier "im_action"), as a TTL
    would: their timeline entries stay."""
    pre, suf = mem.actions.layout.record_key_parts(tier, agent_id=agent)
    assert r.delete(*[f"{pre}{i}{suf}" for i in ids]) == len(ids)


def archived(archive: Archive, sim: str, action_id: str = "a1-5-move") -> list[Action]:
    """The archived rows of ``action_id`` of a1 in ``sim`` (read without ``get``)."""
    return [a for a in sqlreads.timeline(archive, "a1")
            if a.simulation_id == sim and a.action_id == action_id]


def ids(found: list[Action | IMAction]) -> list[str]:
    return [str(a.action_id) for a in found]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_recent_relative_and_history_skip_gone_stm_hashes_and_fill_their_limit(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    """STM holds steps 3-5, the hashes of 4 and 5 gone; IM holds 0-2: the newest live
    action is STM's step 3, then IM's 2 (before: IM's 2 and 1, STM's 3 skipped)."""
    mem = connect(layout_version=layout)
    mem.actions.add_many([act(s) for s in range(6)])
    Tiers(mem).transition("a1", ["a1-0-move", "a1-1-move", "a1-2-move"])
    gone(mem, r, "a1-4-move", "a1-5-move")
    assert ids(recent(mem, "a1", 2)) == ["a1-3-move", "a1-2-move"]
    assert isinstance(recent(mem, "a1", 2)[0], Action)
    assert isinstance(recent(mem, "a1", 2)[1], IMAction)
    assert ids(history(mem, "a1", newest_first=True, limit=2)) == ["a1-3-move", "a1-2-move"]
    assert ids(mem.actions.history("a1", newest_first=True, limit=1)) == ["a1-3-move"]
    first = relative(mem, "a1", 0)
    second = relative(mem, "a1", -1)
    assert first is not None
    assert first.action_id == "a1-3-move"
    assert second is not None
    assert second.action_id == "a1-2-move"
    assert relative(mem, "a1", -4) is None
    assert ids(recent(mem, "a1", 10)) == ["a1-3-move", "a1-2-move", "a1-1-move", "a1-0-move"]


@pytest.mark.parametrize("read", ["by_type", "by_target", "high_reward"])
def test_reads_across_tiers_take_any_limit_a_query_takes(
        connect: Callable[..., agentmem.Memory], read: str) -> None:
    """A limit above a page's 10,000 is a limit like any other (review 104: by_type and
    by_target raised InvalidInput about a page size for 10,001): IM is read in pages of
    at most 10,000."""
    mem = connect()
    mem.actions.add_many([act(s, action_target_id="t", reward=1.0) for s in range(6)])
    Tiers(mem).transition("a1", ["a1-0-move", "a1-1-move", "a1-2-move"])
    args = {"by_type": ("move",), "by_target": ("t",), "high_reward": (0.5,)}[read]
    whole = ids(getattr(reads, read)(mem, "a1", *args))
    assert len(whole) == 6
    for limit in (10_000, 10_001, 10**6, 10**12):
        assert ids(getattr(reads, read)(mem, "a1", *args, limit=limit)) == whole


@pytest.mark.parametrize("layout", LAYOUTS)
def test_history_skips_gone_im_hashes_and_fills_its_limit_oldest_and_newest_first(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    """IM entries whose hash ``im_ttl`` removed are skipped and the read goes on, in
    either direction: IM 0-4 with 3 and 4 gone, STM 5 and 6 with 5 gone."""
    mem = connect(layout_version=layout)
    mem.actions.add_many([act(s) for s in range(7)])
    Tiers(mem).transition("a1", [f"a1-{s}-move" for s in range(5)])
    gone(mem, r, "a1-3-move", "a1-4-move", tier="im_action")
    gone(mem, r, "a1-5-move")
    assert ids(recent(mem, "a1", 3)) == ["a1-6-move", "a1-2-move", "a1-1-move"]
    gone(mem, r, "a1-0-move", "a1-1-move", tier="im_action")
    assert ids(history(mem, "a1", limit=2)) == ["a1-2-move", "a1-6-move"]
    assert ids(history(mem, "a1", 1, 6, limit=1)) == ["a1-2-move"]
    assert ids(history(mem, "a1", 3, 6, newest_first=True, limit=5)) == ["a1-6-move"]


def test_history_with_a_limit_is_the_head_of_the_whole_history(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """Random tiers, gone hashes in both, many actions per step (ties past a page of
    256 entries): every limited read equals the unlimited one cut to its limit."""
    rng = random.Random(42)
    kinds = [f"k{n:03d}" for n in range(300)]
    rows = [act(s, k) for s in range(40) for k in rng.sample(kinds, rng.randint(0, 12))]
    rows += [act(17, k) for k in kinds if all(a.action_type != k or a.step_number != 17
                                              for a in rows)]  # 300 ids of one step
    every = [str(a.action_id) for a in mem.actions.add_many(rows)]
    Tiers(mem).transition("a1", rng.sample(every, len(every) // 2))
    in_im = {str(a.action_id) for a in mem.im_actions.page(
        "range", "im_timeline", size=10_000, agent_id="a1").items}
    dropped = rng.sample(every, len(every) // 3)
    gone(mem, r, *[i for i in dropped if i not in in_im])
    gone(mem, r, *[i for i in dropped if i in in_im], tier="im_action")
    for _ in range(60):
        newest = rng.random() < 0.5
        lo = rng.choice([None, rng.randint(0, 39)])
        hi = rng.choice([None, rng.randint(lo or 0, 39)])
        whole = ids(history(mem, "a1", lo, hi, newest_first=newest))
        for limit in (0, 1, 2, rng.randint(3, 400), 5000):
            assert ids(history(mem, "a1", lo, hi, newest_first=newest, limit=limit)) == \
                whole[:limit]
    live = ids(history(mem, "a1", newest_first=True))
    assert len(live) == len(every) - len(dropped)
    assert ids(recent(mem, "a1", 50)) == live[:50]
    for k in (0, 1, 30, 299, len(live) - 1):
        found = relative(mem, "a1", -k)
        assert found is not None
        assert found.action_id == live[k]


def _hgetalls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


def test_a_limited_history_fetches_the_limit_plus_the_gone_hashes_it_meets(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """1,000 actions in each tier, the 5 newest of STM gone: recent(3) fetches 8 hashes
    (3 found, 5 gone), not a page of either timeline."""
    mem.actions.add_many([act(s) for s in range(2000)])
    Tiers(mem).transition("a1", [f"a1-{s}-move" for s in range(1000)])
    gone(mem, r, *[f"a1-{s}-move" for s in range(1995, 2000)])
    r.config_resetstat()
    assert ids(recent(mem, "a1", 3)) == [f"a1-{s}-move" for s in (1994, 1993, 1992)]
    assert _hgetalls(r) == 8


def test_maintain_archives_an_updated_action_whose_id_another_simulation_archived(
        mem: agentmem.Memory, archive: Archive) -> None:
    """s1's a1-5-move is archived and evicted; s2 gets a1-5-move too (another scope),
    a dual writer archives it, the user updates it: maintain replaces s2's row (before:
    refused, looked up without the simulation it found s1's row, and stayed in STM)."""
    tiers = Tiers(mem, TierPolicy(stm_steps=1, im_capacity=1), archive=archive)
    mem.actions.add_many([act(5, sim="s1", reward=1.0), act(6, sim="s1", reward=1.0)])
    tiers.maintain(now_step=100)
    assert len(archived(archive, "s1")) == 1
    b = mem.actions.add(act(5, sim="s2", reward=2.0))
    assert b.action_id == "a1-5-move"
    archive.write([b])  # as the dual writer does
    updated = mem.actions.update(b.model_copy(update={"reward": 3.0}))
    report = tiers.maintain(now_step=100)
    assert report.refused == []
    assert mem.actions.get("a1-5-move", agent_id="a1") is None
    assert archived(archive, "s2") == [updated]
    assert [a.reward for a in archived(archive, "s1")] == [1.0]
    assert archive.count("s1") == 2
    assert archive.count("s2") == 1


def test_maintain_replaces_an_updated_action_whose_id_another_simulation_holds(
        archive: Archive) -> None:
    """``write_updating`` (maintain's archive write, ``replace=True``) compares the row of
    the action's own simulation: the s2 action replaces s2's row, s1's is untouched, and
    a different action under s2's id (another write time) is still refused. Without
    ``replace`` (a drain, a sync, a dual writer) the archived row stays and the action
    counts as archived; another action under the id is refused the same."""
    s1 = act(5, sim="s1", action_id="a1-5-move", stored_at=10, reward=1.0)
    s2 = act(5, sim="s2", action_id="a1-5-move", stored_at=20, reward=2.0)
    archive.write([s1, s2])
    newer = s2.model_copy(update={"reward": 3.0})
    assert write_updating(archive, [newer], replace=False) == (0, [])
    assert archived(archive, "s2") == [s2]
    assert write_updating(archive, [newer], replace=True) == (1, [])
    assert archived(archive, "s2") == [newer]
    assert archived(archive, "s1") == [s1]
    other = s2.model_copy(update={"reward": 4.0, "stored_at": 30})
    for replace in (True, False):
        assert write_updating(archive, [other], replace=replace) == (0, [0])
    assert archived(archive, "s2") == [newer]


def test_archive_get_by_simulation_and_without_it_the_row_archived_last(
        archive: Archive) -> None:
    """One id archived in two simulations: ``get`` with a simulation returns its row;
    without, the row archived last, on every call; a bad simulation is refused."""
    archive.write([act(5, sim="s2", action_id="a1-5-move", reward=2.0)])
    archive.write([act(5, sim="s1", action_id="a1-5-move", reward=1.0)])
    got = [sqlreads.get(archive, "a1", "a1-5-move", simulation_id=s) for s in ("s1", "s2")]
    assert [g.reward if g else None for g in got] == [1.0, 2.0]
    for _ in range(3):
        last = sqlreads.get(archive, "a1", "a1-5-move")
        assert last is not None
        assert last.simulation_id == "s1"
    assert sqlreads.get(archive, "a1", "a1-5-move", simulation_id="s3") is None
    with pytest.raises(AgentMemError):
        sqlreads.get(archive, "a1", "a1-5-move", simulation_id="")


def test_find_with_a_simulation_returns_that_simulations_action(
        mem: agentmem.Memory, archive: Archive) -> None:
    """s1's a1-5-move only archived, s2's in STM, then in IM: ``find`` with s1 returns
    the archived row, with s2 the Redis one; without, the Redis one; with an unknown
    simulation, nothing; a bad simulation id is refused."""
    archive.write([act(5, sim="s1", action_id="a1-5-move", reward=1.0)])
    b = mem.actions.add(act(5, sim="s2", action_id="a1-5-move", reward=2.0))
    s1 = find(mem, "a1", "a1-5-move", archive, simulation_id="s1")
    assert s1 is not None
    assert s1.simulation_id == "s1"
    assert s1.reward == 1.0
    assert find(mem, "a1", "a1-5-move", archive, simulation_id="s2") == b
    assert find(mem, "a1", "a1-5-move", archive) == b
    assert find(mem, "a1", "a1-5-move", archive, simulation_id="s3") is None
    assert find(mem, "a1", "a1-5-move", simulation_id="s1") is None
    Tiers(mem).transition("a1", ["a1-5-move"])
    im = find(mem, "a1", "a1-5-move", archive, simulation_id="s2")
    assert isinstance(im, IMAction)
    assert im.simulation_id == "s2"
    s1 = find(mem, "a1", "a1-5-move", archive, simulation_id="s1")
    assert isinstance(s1, Action)
    assert s1.simulation_id == "s1"
    with pytest.raises(AgentMemError):
        find(mem, "a1", "a1-5-move", archive, simulation_id="")


def test_an_id_evicted_from_im_is_not_given_again(mem: agentmem.Memory,
                                                  archive: Archive) -> None:
    """docs/tiers.md "Limits" (it said such an id "can be given again"): a late action of
    the same agent, simulation, step and type gets ``<id>.r<n>``; in another simulation
    the natural id is free."""
    tiers = Tiers(mem, TierPolicy(stm_steps=1, im_capacity=1), archive=archive)
    mem.actions.add_many([act(4), act(5), act(6)])
    report = tiers.maintain(now_step=100)
    assert report.evicted == 2
    assert mem.im_actions.get("a1-5-move", agent_id="a1") is None
    assert mem.actions.get("a1-5-move", agent_id="a1") is None
    assert mem.actions.add(act(5)).action_id == "a1-5-move.r1"
    assert mem.actions.add(act(5, sim="s_other")).action_id == "a1-5-move"
