"""``read_window`` with a limit when hashes are gone, against real Redis and Valkey: the
limit is filled past the gone ids, as ``history`` fills it (docs/queries.md: "where a
query has a `limit`, it keeps reading past skipped ids to fill it").

A hash "gone" is deleted with ``DEL``, which leaves the same state as its TTL firing
(the timeline entry stays, the hash does not) without waiting on a clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.errors import InvalidInput
from agentmem.search.sequences import Window, analyze, read_window
from agentmem.tiers.maintenance import TierPolicy, Tiers

LAYOUTS = [1, 2, 3, 4]


def gone(mem: agentmem.Memory, r: redis.Redis, *ids: str, tier: str = "action",
         agent: str = "a") -> None:
    """Delete the hashes of ``ids`` (of STM, or of IM with tier "im_action"), as a TTL
    would: their timeline entries stay."""
    pre, suf = mem.actions.layout.record_key_parts(tier, agent_id=agent)
    assert r.delete(*[f"{pre}{i}{suf}" for i in ids]) == len(ids)


def newest(mem: agentmem.Memory, agent: str, start: int | None = None,
           end: int | None = None, limit: int | None = None) -> list[str]:
    """``history``'s newest ``limit`` actions (both tiers), oldest first."""
    got = mem.actions.history(agent, start, end, newest_first=True, limit=limit)
    return [a.action_id for a in got][::-1]


def same_as_history(mem: agentmem.Memory, w: Window, agent: str, start: int | None = None,
                    end: int | None = None, limit: int | None = None) -> None:
    """Every column of ``w`` equals that of ``history``'s newest ``limit``."""
    got = mem.actions.history(agent, start, end, newest_first=True, limit=limit)[::-1]
    assert w.ids == [a.action_id for a in got]
    assert w.types == [a.action_type for a in got]
    assert w.steps.tolist() == [float(a.step_number) for a in got]
    assert w.tiers == ["i" if isinstance(a, agentmem.IMAction) else "s" for a in got]


def six(mem: agentmem.Memory) -> None:
    for step in range(6):
        mem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                           action_type="move", reward=0.5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_gone_stm_hash_does_not_count_toward_the_limit(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    mem = connect(layout_version=layout, spin_us=0)
    six(mem)
    gone(mem, r, "a-4-move")
    want = ["a-2-move", "a-3-move", "a-5-move"]
    assert newest(mem, "a", limit=3) == want
    for tiers in ("stm", "all"):
        w = read_window(mem, "a", tiers=tiers, limit=3)  # type: ignore[arg-type]
        assert w.ids == want, tiers
        assert w.tiers == ["s", "s", "s"]
        assert w.rewards.tolist() == [0.5, 0.5, 0.5]
    for limit in range(7):
        same_as_history(mem, read_window(mem, "a", tiers="all", limit=limit), "a",
                        limit=limit)
    same_as_history(mem, read_window(mem, "a", 1, 4, limit=2), "a", 1, 4, limit=2)
    assert read_window(mem, "a", 1, 4, limit=2).ids == ["a-2-move", "a-3-move"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_gone_im_hash_does_not_count_toward_the_limit(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    mem = connect(layout_version=layout, spin_us=0)
    six(mem)
    Tiers(mem, TierPolicy(stm_steps=1)).maintain(["a"])  # steps 0-4 -> IM, 5 stays
    assert read_window(mem, "a", tiers="all").tiers == ["i"] * 5 + ["s"]
    gone(mem, r, "a-4-move", tier="im_action")
    w = read_window(mem, "a", tiers="all", limit=3)
    assert w.ids == newest(mem, "a", limit=3) == ["a-2-move", "a-3-move", "a-5-move"]
    assert w.tiers == ["i", "i", "s"]
    # a range of IM only: the gone newest is passed over, the limit filled from older
    w = read_window(mem, "a", 0, 4, tiers="all", limit=3)
    assert w.ids == newest(mem, "a", 0, 4, limit=3) == ["a-1-move", "a-2-move", "a-3-move"]
    for limit in range(7):
        same_as_history(mem, read_window(mem, "a", tiers="all", limit=limit), "a",
                        limit=limit)
    # both tiers with gone hashes
    gone(mem, r, "a-5-move")
    gone(mem, r, "a-3-move", tier="im_action")
    w = read_window(mem, "a", tiers="all", limit=3)
    assert w.ids == newest(mem, "a", limit=3) == ["a-0-move", "a-1-move", "a-2-move"]


@pytest.mark.parametrize("layout", [2, 4])
def test_a_long_run_of_gone_newest_hashes(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    mem = connect(layout_version=layout, spin_us=0)
    n = 1200
    out = mem.actions.add_many([
        Action(agent_id="x", simulation_id="S", step_number=i,
               action_type=("move", "eat")[i % 2], reward=i / n) for i in range(n)])
    gone(mem, r, *[a.action_id for a in out[40:]], agent="x")  # the newest 1,160
    live = [a.action_id for a in out[:40]]
    w = read_window(mem, "x", limit=6)
    assert w.ids == live[-6:] == newest(mem, "x", limit=6)
    assert w.types == ["move", "eat"] * 3
    assert np.allclose(w.rewards, [i / n for i in range(34, 40)])
    assert read_window(mem, "x", tiers="all", limit=6).ids == live[-6:]
    assert read_window(mem, "x", limit=100).ids == live
    assert read_window(mem, "x", 0, 1000, limit=3).ids == live[-3:]
    assert read_window(mem, "x", 500, None, limit=3).ids == []
    assert analyze(mem, "x", limit=6).window.ids == live[-6:]


@pytest.mark.parametrize("layout", [1, 4])
def test_ties_of_one_step_across_pages(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, layout: int) -> None:
    """600 actions of one step (more than a page of the script's reads, 256), every third
    hash gone, in both tiers: each limit equals history's."""
    mem = connect(layout_version=layout, spin_us=0)
    acts = [Action(agent_id="a", simulation_id="s", step_number=3 + (k >= 300),
                   action_type=f"t{k:03d}", reward=float(k)) for k in range(600)]
    acts += [Action(agent_id="a", simulation_id="s", step_number=s, action_type="move")
             for s in (1, 2, 5, 6)]
    stored = mem.actions.add_many(acts)
    # step 3 (300 ties) and steps 1, 2 to IM; step 4 (300 ties), 5, 6 stay in STM
    Tiers(mem).transition("a", [a.action_id for a in stored if a.step_number <= 3])
    gone(mem, r, *[a.action_id for a in stored[0:300:3]], tier="im_action")
    gone(mem, r, *[a.action_id for a in stored[301:600:3]])
    for limit in (1, 2, 3, 150, 199, 200, 201, 256, 257, 300, 402, 403, 500, 10**12):
        same_as_history(mem, read_window(mem, "a", tiers="all", limit=limit), "a",
                        limit=limit)
        same_as_history(mem, read_window(mem, "a", 3, 4, tiers="all", limit=limit), "a",
                        3, 4, limit=limit)
    stm = read_window(mem, "a", limit=250)
    assert len(stm.ids) == 202  # STM holds 200 of step 4, steps 5 and 6
    assert set(stm.tiers) == {"s"}
    same_as_history(mem, read_window(mem, "a", tiers="all"), "a")


@pytest.mark.parametrize("seed", range(4))
def test_random_gone_hashes_match_history(
        connect: Callable[..., agentmem.Memory], r: redis.Redis, seed: int) -> None:
    rng = random.Random(seed)
    mem = connect(layout_version=LAYOUTS[seed % len(LAYOUTS)], spin_us=0)
    acts = [Action(agent_id="a", simulation_id="s", step_number=rng.randrange(40),
                   action_type=f"k{i}", reward=rng.choice([None, 1.0, -1.0]))
            for i in range(300)]
    stored = mem.actions.add_many(acts)
    moved = [a.action_id for a in stored if a.step_number < 25 and rng.random() < 0.8]
    Tiers(mem).transition("a", moved)
    ims = set(moved)
    for a in stored:
        if rng.random() < 0.4:
            gone(mem, r, a.action_id, tier="im_action" if a.action_id in ims else "action")
    for _ in range(25):
        lo = rng.choice([None, rng.randrange(40)])
        hi = rng.choice([None, rng.randrange(40)])
        limit = rng.choice([None, 0, 1, 5, 50, 200, 400])
        w = read_window(mem, "a", lo, hi, tiers="all", limit=limit)
        same_as_history(mem, w, "a", lo, hi, limit=limit)


def test_a_huge_limit_is_refused_as_bad_input(mem: agentmem.Memory) -> None:
    mem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type="move")
    for bad in (10**12 + 1, 10**17, 2**63, -1, True, 2.0, "3"):
        for tiers in ("stm", "all"):
            with pytest.raises(InvalidInput):
                read_window(mem, "a", tiers=tiers, limit=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            analyze(mem, "a", limit=bad)  # type: ignore[arg-type]
    assert read_window(mem, "a", limit=10**12).ids == ["a-1-move"]
    assert read_window(mem, "a", tiers="all", limit=np.int64(1)).ids == ["a-1-move"]
