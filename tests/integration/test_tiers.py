"""Memory tiers (agentmem.tiers.maintenance, agentmem.tiers.reads) against real Redis and Valkey.

The archive is a SQLite file of the test's own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action, ConfigError, IMAction, action_importance
from agentmem.backends.sql import Archive, open_archive
from agentmem.tiers.maintenance import TierPolicy, Tiers
from agentmem.tiers.reads import find, history, recent, relative

SIM = "sim_t"


def act(agent: str = "a1", step: int = 1, kind: str = "move", **kw: Any) -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=step, action_type=kind, **kw)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with open_archive(tmp_path / "archive.db") as a:
        yield a


def test_transition_leaves_every_short_term_index(mem: agentmem.Memory, r: redis.Redis,
                                                  archive: Archive) -> None:
    stored = mem.actions.add_many([
        act(step=1, kind="share", action_target_id="b2", reward=0.8, resources_before=1.0,
            resources_after=2.0, details={"x": 1}, position=(1.0, 2.0)),
        act(step=1, kind="move", reward=-0.1),
        act(step=2, kind="move"),
    ])
    tiers = Tiers(mem, archive=archive)
    moved = tiers.transition("a1", ["a1-1-share", "a1-1-move"])
    assert moved == ["a1-1-share", "a1-1-move"]
    # the compressed hash of section 6, with the importance of section 7
    im = r.hgetall("agent:a1:im:action:a1-1-share")
    assert {k.decode(): v.decode() for k, v in im.items()} == {
        "action_id": "a1-1-share", "simulation_id": SIM, "step_number": "1", "agent_id": "a1",
        "action_type": "share", "reward": "0.8", "action_target_id": "b2",
        "importance": format(action_importance(stored[0]), ".6g"),
    }
    assert r.ttl("agent:a1:im:action:a1-1-share") > 0
    assert r.zrange("agent:a1:im:action:timeline", 0, -1, withscores=True) == [
        (b"a1-1-move", 1.0), (b"a1-1-share", 1.0)]
    # gone from every STM index, the relative and simulation-level ones included
    assert not r.exists("agent:a1:action:a1-1-share", "agent:a1:action:a1-1-move")
    assert r.zrange("agent:a1:action:timeline", 0, -1) == [b"a1-2-move"]
    assert r.zrange("agent:a1:action:relative_index", 0, -1) == [b"a1-2-move"]
    assert r.smembers("agent:a1:action:types:move") == {b"a1-2-move"}
    assert not r.exists("agent:a1:action:types:share", "agent:a1:action:targets:b2")
    assert r.zrange("agent:a1:action:rewards", 0, -1) == []
    assert r.lrange(f"simulation:{SIM}:actions", 0, -1) == [b"a1-2-move"]
    assert not r.exists(f"simulation:{SIM}:actions:1")
    assert r.zrange(f"simulation:{SIM}:actions:steps", 0, -1) == [b"2"]
    assert r.hgetall(f"simulation:{SIM}:actions:by_type") == {b"move": b"1"}
    # archived in full before leaving Redis; found by id through the tiers
    assert [a.action_id for a in archive.read(SIM)] == ["a1-1-share", "a1-1-move"]
    assert find(mem, "a1", "a1-1-share", archive) == mem.im_actions.get("a1-1-share",
                                                                       agent_id="a1")
    assert tiers.transition("a1", ["a1-1-share"]) == []  # not in STM any more


def test_history_reads_stm_and_im_as_one_sequence(mem: agentmem.Memory) -> None:
    mem.actions.add_many([act(step=s, kind=k) for s in range(10) for k in ("move", "eat")])
    Tiers(mem).transition("a1", [f"a1-{s}-{k}" for s in range(6) for k in ("move", "eat")])
    seq = history(mem, "a1")
    assert [a.action_id for a in seq] == [f"a1-{s}-{k}" for s in range(10)
                                          for k in ("eat", "move")]
    assert [type(a) for a in seq[:12]] == [IMAction] * 12
    assert [type(a) for a in seq[12:]] == [Action] * 8
    assert [a.action_id for a in recent(mem, "a1", 3)] == ["a1-9-move", "a1-9-eat",
                                                            "a1-8-move"]
    assert [a.action_id for a in history(mem, "a1", 5, 6, newest_first=True)] == [
        "a1-6-move", "a1-6-eat", "a1-5-move", "a1-5-eat"]
    rel = relative(mem, "a1", -12)
    assert rel is not None
    assert rel.action_id == "a1-3-move"
    assert isinstance(rel, IMAction)
    assert relative(mem, "a1", -20) is None


def test_window_by_steps_moves_the_old(mem: agentmem.Memory, archive: Archive) -> None:
    mem.actions.add_many([act(agent=a, step=s) for a in ("a1", "a2") for s in range(10)])
    tiers = Tiers(mem, TierPolicy(stm_steps=3), archive=archive)
    rep = tiers.maintain(now_step=9)
    assert rep.agents == 2
    assert rep.to_im == 14
    assert [a.step_number for a in mem.actions.timeline("a1")] == [7, 8, 9]
    assert mem.im_actions.count("im_timeline", agent_id="a1") == 7
    assert archive.count(SIM) == 14
    assert tiers.maintain(now_step=9).to_im == 0  # nothing more to do


def test_window_by_time_moves_the_old(mem: agentmem.Memory) -> None:
    mem.actions.add_many([act(step=s) for s in range(3)])
    tiers = Tiers(mem, TierPolicy(stm_seconds=30))
    assert tiers.maintain().to_im == 0
    assert tiers.maintain(now=time.time() + 31).to_im == 3
    with pytest.raises(ConfigError, match="shorter"):
        Tiers(agentmem.connect("redis://127.0.0.1:1/0", ttl=60), TierPolicy(stm_seconds=60))


def test_capacity_keeps_the_important_among_the_same_age(mem: agentmem.Memory) -> None:
    mem.actions.add_many([
        act(step=1, kind="move"),                                  # importance 0
        act(step=1, kind="attack", action_target_id="b", reward=1.0),  # 1.0
        act(step=1, kind="share", reward=0.2),                     # 0.4
        act(step=2, kind="move"),
    ])
    Tiers(mem, TierPolicy(stm_capacity=2)).maintain()
    assert {a.action_id for a in mem.actions.timeline("a1")} == {"a1-1-attack", "a1-2-move"}


def test_importance_weight_lets_importance_outlive_age(mem: agentmem.Memory) -> None:
    mem.actions.add_many([act(step=1, kind="attack", action_target_id="b", reward=1.0),
                          act(step=2, kind="move"), act(step=3, kind="move")])
    Tiers(mem, TierPolicy(stm_capacity=2, importance_weight=5)).maintain()
    assert {a.action_id for a in mem.actions.timeline("a1")} == {"a1-1-attack", "a1-3-move"}


def test_pinned_actions_stay(mem: agentmem.Memory, r: redis.Redis) -> None:
    mem.actions.add_many([act(step=s) for s in range(5)])
    tiers = Tiers(mem, TierPolicy(stm_steps=1, im_capacity=1))
    tiers.pin("a1", "a1-0-move")
    assert r.ttl("agent:a1:action:a1-0-move") == -1  # no TTL while pinned
    tiers.maintain()
    assert [a.action_id for a in mem.actions.timeline("a1")] == ["a1-0-move", "a1-4-move"]
    assert tiers.pinned("a1") == {"a1-0-move"}
    tiers.unpin("a1", "a1-0-move")
    assert r.ttl("agent:a1:action:a1-0-move") > 0
    tiers.maintain()
    assert [a.action_id for a in mem.actions.timeline("a1")] == ["a1-4-move"]


def test_a_pinned_action_never_moves_nor_expires(mem: agentmem.Memory, r: redis.Redis,
                                                archive: Archive) -> None:
    """A transition asked for a pinned action leaves it (whole, without a TTL); an IM
    pin is never evicted, even when pinned after the eviction was planned."""
    mem.actions.add_many([act(step=s) for s in range(6)])
    tiers = Tiers(mem, TierPolicy(stm_steps=1, im_capacity=1), archive=archive)
    assert tiers.pin("a1", "a1-0-move") == "stm"
    assert tiers.pin("a1", "a1-99-move") is None  # no such action: nothing pinned
    assert tiers.pinned("a1") == {"a1-0-move"}
    assert tiers.transition("a1", ["a1-0-move", "a1-1-move"]) == ["a1-1-move"]
    assert r.exists("agent:a1:action:a1-0-move")
    assert r.ttl("agent:a1:action:a1-0-move") == -1
    assert r.zscore("agent:a1:action:timeline", "a1-0-move") == 0
    assert not r.exists("agent:a1:im:action:a1-0-move")
    assert tiers.pin("a1", "a1-1-move") == "im"
    assert r.ttl("agent:a1:im:action:a1-1-move") == -1
    rep = tiers.maintain()
    assert rep.to_im == 3
    assert rep.pinned == 0
    assert rep.evicted == 2
    assert {a.action_id for a in history(mem, "a1")} == {"a1-0-move", "a1-1-move",
                                                         "a1-4-move", "a1-5-move"}
    # an entry pinned between the eviction plan and the eviction stays (EVICT_IM checks)
    tiers.unpin("a1", "a1-1-move")
    victims = tiers.plan().moving
    assert victims == {}
    mem.actions.add_many([act(step=s) for s in range(6, 9)])
    planned = tiers.plan()
    assert planned.dry_run
    assert planned.to_im == 3
    assert planned.evicted == 4
    assert planned.moving == {"a1": ["a1-5-move", "a1-6-move", "a1-7-move"]}
    assert r.zcard("agent:a1:im:action:timeline") == 2  # the plan changed nothing
    assert tiers.pin("a1", "a1-4-move") == "im"
    tiers.maintain()
    assert r.exists("agent:a1:im:action:a1-4-move")
    assert r.exists("agent:a1:action:a1-0-move")
    assert r.ttl("agent:a1:action:a1-0-move") == -1


def test_stop_runs_a_last_maintain(mem: agentmem.Memory) -> None:
    """What was written after the runner's last round is maintained by stop()."""
    tiers = Tiers(mem, TierPolicy(stm_steps=2))
    tiers.start(interval=3600)  # never runs on its own during the test
    mem.actions.add_many([act(step=s) for s in range(6)])
    tiers.stop()
    assert mem.actions.count("timeline", agent_id="a1") == 2
    assert tiers.last_report is not None
    assert tiers.last_report.to_im == 4
    mem.actions.add_many([act(step=s) for s in range(6, 9)])
    tiers.start(interval=3600)
    tiers.stop(final=False)  # documented opt-out
    assert mem.actions.count("timeline", agent_id="a1") == 5


def test_im_capacity_evicts_to_the_archive(mem: agentmem.Memory, archive: Archive) -> None:
    mem.actions.add_many([act(step=s, reward=s / 10) for s in range(10)])
    tiers = Tiers(mem, TierPolicy(stm_steps=2, im_capacity=3), archive=archive)
    rep = tiers.maintain()
    assert rep.to_im == 8
    assert rep.evicted == 5
    im = history(mem, "a1")
    assert [a.action_id for a in im] == [f"a1-{s}-move" for s in range(5, 10)]
    assert archive.count(SIM) == 8
    # an evicted action is still found by id, in full, through the archive
    got = find(mem, "a1", "a1-0-move", archive)
    assert isinstance(got, Action)
    assert got.reward == 0.0


def test_background_runner_maintains(mem: agentmem.Memory) -> None:
    mem.actions.add_many([act(step=s) for s in range(6)])
    tiers = Tiers(mem, TierPolicy(stm_steps=2))
    tiers.start(interval=0.05)
    deadline = time.monotonic() + 5
    while mem.actions.count("timeline", agent_id="a1") > 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    tiers.stop()
    assert tiers.last_report is not None


@pytest.mark.slow
@pytest.mark.parametrize("server", ["valkey"], indirect=True)  # client logic: one kind
def test_100_agents_2000_steps_within_limits_and_archived_once(
        server: Any, r: redis.Redis, archive: Archive) -> None:
    """The issue's run: small limits, maintenance every 10 steps. Redis never holds more
    per agent than the limits allow: IM at most ``im_capacity`` at every check, STM at
    most ``stm_capacity`` after each maintenance and at most ``stm_capacity`` plus the
    10 steps written since before it. The archive ends with every action exactly once;
    the peak memory is printed."""
    mem = agentmem.connect(server.url)
    policy = TierPolicy(stm_steps=20, stm_capacity=25, im_capacity=50)
    tiers = Tiers(mem, policy, archive=archive)
    agents = [f"ag{i}" for i in range(100)]
    every = 10
    peak = 0

    def counts() -> tuple[int, int]:
        pipe = r.pipeline(transaction=False)
        for a in agents:
            pipe.zcard(f"agent:{a}:action:timeline")
            pipe.zcard(f"agent:{a}:im:action:timeline")
        got = pipe.execute()
        return max(got[0::2]), max(got[1::2])

    for step in range(2000):
        mem.actions.add_many([
            Action(agent_id=a, simulation_id=SIM, step_number=step,
                   action_type=("move", "gather", "share", "attack")[(step + i) % 4],
                   reward=((step * 7 + i) % 11) / 10, action_target_id=agents[(i + 1) % 100]
                   if (step + i) % 4 >= 2 else None, resources_before=1.0,
                   resources_after=1.0 + (step % 3))
            for i, a in enumerate(agents)])
        if step % every == every - 1:
            stm, im = counts()
            assert stm <= policy.stm_capacity + every  # type: ignore[operator]
            assert im <= policy.im_capacity  # type: ignore[operator]
            peak = max(peak, int(r.info("memory")["used_memory"]))
            tiers.maintain(agents, now_step=step)
            stm, im = counts()
            assert stm <= policy.stm_capacity  # type: ignore[operator]
            assert im <= policy.im_capacity  # type: ignore[operator]
    in_stm = [a for ag in agents for a in mem.actions.timeline(ag)]
    assert len(in_stm) == 100 * 20
    # what left Redis is archived; what is still in STM is archived when it leaves
    assert archive.count(SIM) == 200_000 - len(in_stm)
    archive.write(in_stm)
    ids = [(a.agent_id, a.action_id) for a in archive.read(SIM)]
    assert len(ids) == 200_000
    assert len(set(ids)) == 200_000
    print(f"\npeak used_memory over the 100 x 2,000 run: {peak / 2**20:.1f} MiB")
    mem.close()


def test_maintenance_leaves_every_index_consistent(mem: agentmem.Memory,
                                                   archive: Archive) -> None:
    """check() (agentmem.integrity.checker) finds nothing wrong after transitions and evictions:
    no orphan, no hash missing from an index, every counter right."""
    from agentmem.integrity import check

    mem.actions.add_many([act(agent=f"a{i}", step=s, kind=("move", "share")[s % 2],
                              action_target_id="b" if s % 2 else None, reward=s / 7)
                          for i in range(5) for s in range(40)])
    tiers = Tiers(mem, TierPolicy(stm_steps=10, stm_capacity=8, im_capacity=12),
                  archive=archive)
    tiers.pin("a0", "a0-3-share")
    rep = tiers.maintain()
    assert rep.to_im == 5 * 32 - 1
    assert rep.evicted == 5 * 20 - 1
    report = check(mem)
    assert report.clean, str(report)
    assert mem.actions.type_counts(SIM) == {"move": 20, "share": 21}


async def test_history_on_the_asyncio_repository(mem: agentmem.Memory,
                                                 amem: agentmem.AsyncMemory) -> None:
    mem.actions.add_many([act(step=s) for s in range(6)])
    Tiers(mem).transition("a1", ["a1-0-move", "a1-1-move"])
    seq = await amem.actions.history("a1", newest_first=True, limit=5)
    assert [a.action_id for a in seq] == [f"a1-{s}-move" for s in (5, 4, 3, 2, 1)]
    assert isinstance(seq[-1], IMAction)
    assert seq == history(mem, "a1", newest_first=True, limit=5)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True, "1"])
def test_start_refuses_a_bad_interval_through_the_settings_model(mem: agentmem.Memory,
                                                                 bad: object) -> None:
    with pytest.raises(ConfigError, match="maintain_interval"):
        Tiers(mem).start(interval=bad)  # type: ignore[arg-type]


def test_eviction_over_many_plans_removes_every_excess_entry(mem: agentmem.Memory,
                                                             r: redis.Redis) -> None:
    """2,400 entries over capacity: planned and evicted in rounds of at most PLAN_SLICE
    (no single script names them all), the oldest first."""
    mem.im_actions.add_many([IMAction(action_id=f"a1-{s}-move", agent_id="a1",
                                      simulation_id=SIM, step_number=s, action_type="move",
                                      importance=0.5) for s in range(2500)])
    report = Tiers(mem, TierPolicy(im_capacity=100)).maintain()
    assert report.evicted == 2400
    assert r.zrange("agent:a1:im:action:timeline", 0, -1) == [
        f"a1-{s}-move".encode() for s in sorted(range(2400, 2500), key=lambda s: f"{s}")]


def test_an_action_updated_after_it_was_archived_moves_and_replaces_its_row(
        mem: agentmem.Memory, archive: Archive) -> None:
    """A dual writer archives an action, the user updates it in STM: maintain raised
    DuplicateId at every round (the archive held the id with other content), and no
    action of the batch of agents moved any more."""
    from agentmem.backends import sqlreads

    stored = mem.actions.add_many([act(step=s, reward=0.1) for s in range(1, 5)]
                                  + [act("a2", step=s) for s in range(1, 5)])
    archive.write(stored)  # as the dual writer does
    updated = mem.actions.update(stored[0].model_copy(update={"reward": 0.9}))
    # another action under an id the archive holds (another write time): never replaced
    archive.write([act("a2", step=1, action_id="a2-1-move.7", stored_at=1, reward=5.0)])
    mem.actions.add(act("a2", step=1, action_id="a2-1-move.7"))
    report = Tiers(mem, TierPolicy(stm_steps=2), archive=archive).maintain(now_step=4)
    assert report.refused == ["a2-1-move.7"]
    assert report.to_im == 4
    assert [a.action_id for a in mem.actions.timeline("a1")] == ["a1-3-move", "a1-4-move"]
    assert [a.action_id for a in mem.actions.timeline("a2")] == [
        "a2-1-move.7", "a2-3-move", "a2-4-move"]
    held = sqlreads.get(archive, "a1", "a1-1-move")
    assert held == updated
    assert sqlreads.get(archive, "a2", "a2-1-move.7").reward == 5.0  # type: ignore[union-attr]
    assert archive.count(SIM) == 9


def test_limited_reads_across_tiers_equal_the_filtered_history(mem: agentmem.Memory) -> None:
    """``by_type`` and ``by_target`` with a limit read STM's bounded query and IM in pages
    until enough match; they return what filtering the whole history returns."""
    from agentmem.tiers import reads

    rng = random.Random(3)
    kinds, targets = ["move", "gather", "rare"], ["t1", "t2", None]
    actions = [act(step=s, kind=rng.choices(kinds, [10, 10, 1])[0],
                   action_target_id=rng.choice(targets), reward=rng.random())
               for s in range(700) for _ in range(rng.randint(1, 2))]
    mem.actions.add_many(actions)
    # by steps, and by capacity with importance: IM and STM interleave in steps
    Tiers(mem, TierPolicy(stm_steps=200, stm_capacity=150, importance_weight=5.0)
          ).maintain(now_step=699)
    whole = history(mem, "a1", newest_first=True)
    assert {type(a) for a in whole} == {Action, IMAction}
    for limit in (1, 3, 10, 100, 300, 2000):
        for kind in kinds:
            want = [a.action_id for a in whole if a.action_type == kind][:limit]
            got = [a.action_id for a in reads.by_type(mem, "a1", kind, limit)]
            assert got == want, (kind, limit)
        for target in ("t1", "t2", "nobody"):
            want = [a.action_id for a in whole if a.action_target_id == target][:limit]
            got = [a.action_id for a in reads.by_target(mem, "a1", target, limit)]
            assert got == want, (target, limit)


def test_high_reward_across_tiers_with_a_limit_is_the_best_of_the_whole(
        mem: agentmem.Memory, r: redis.Redis) -> None:
    """``high_reward`` with a limit reads STM's bounded rewards query and IM: the best of
    the whole history (equal rewards by id, highest first), and the STM part reads no more
    hashes than the limit asks."""
    from agentmem.tiers import reads

    rng = random.Random(5)
    mem.actions.add_many([act(step=s, reward=rng.choice([0.25, 0.5, 1.0, rng.random()]))
                          for s in range(600)])
    Tiers(mem, TierPolicy(stm_steps=300)).maintain(now_step=599)
    whole = history(mem, "a1", newest_first=True)
    assert {type(a) for a in whole} == {Action, IMAction}
    for floor in (0.0, 0.5, 0.9):
        best = sorted((a for a in whole if a.reward is not None and a.reward >= floor),
                      key=lambda a: (a.reward, a.action_id), reverse=True)
        assert [a.action_id for a in reads.high_reward(mem, "a1", floor)] == \
            [a.action_id for a in best]
        for limit in (1, 5, 40, 1000):
            got = reads.high_reward(mem, "a1", floor, limit)
            assert [(a.reward, a.action_id) for a in got] == \
                [(a.reward, a.action_id) for a in best[:limit]], (floor, limit)
    for bad in (float("nan"), None, "0.5", True):
        for limit in (None, 5):
            with pytest.raises(agentmem.InvalidInput, match="min_reward"):
                reads.high_reward(mem, "a1", bad, limit)  # type: ignore[arg-type]
    r.config_resetstat()
    assert reads.high_reward(mem, "a1", 0.0, 0) == []
    assert r.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0) == 0
    reads.high_reward(mem, "a1", 0.0, 5)
    stats = r.info("commandstats")
    assert stats.get("cmdstat_hgetall", {}).get("calls", 0) <= 5 + 300  # STM 5, IM whole
