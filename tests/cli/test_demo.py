"""The demo simulation (agentmem.app.demo) and its charts (agentmem.app.report), on real servers.

Each run is small (10 agents x 30 steps); the archive is a SQLite file of the test's own.
The summary's numbers are checked against what Redis and the archive hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import ConfigError
from agentmem.app.demo import TYPES, DemoConfig, run_demo
from agentmem.app.report import load_series, write_report
from agentmem.backends.sql import Archive, open_archive
from agentmem.errors import InvalidInput

SIM = "demo_t"
# 1 action per agent and step: after the final maintain each agent keeps the last
# STM_STEPS steps in STM and IM_CAPACITY older ones in IM; the rest is archived only.
AGENTS, STEPS, STM_STEPS, IM_CAPACITY = 10, 30, 5, 10
SMALL = DemoConfig(agents=AGENTS, steps=STEPS, seed=7, simulation_id=SIM, stm_steps=STM_STEPS,
                   stm_capacity=8, im_capacity=IM_CAPACITY, maintain_every=5,
                   recall_chance=0.3)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with open_archive(tmp_path / "archive.db") as a:
        yield a


def zcard_sum(r: redis.Redis, suffix: str) -> int:
    """ZCARD summed over the timelines of every agent in the database (found by SCAN)."""
    keys = [k.decode() for k in r.scan_iter(match="agent:*:" + suffix, count=1000)]
    return sum(int(r.zcard(k)) for k in keys if k.count(":") == suffix.count(":") + 2)


def content(archive: Archive, sim: str) -> list[tuple[Any, ...]]:
    """Everything of each archived action except its write time."""
    return sorted(
        (a.agent_id, a.step_number, a.action_id, a.action_type, a.action_target_id, a.reward,
         a.resources_before, a.resources_after, a.position, json.dumps(a.details, sort_keys=True))
        for a in archive.read(sim))


def test_summary_matches_the_stores(mem: agentmem.Memory, r: redis.Redis, archive: Archive,
                                    tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    series_file = tmp_path / "series.json"
    s = run_demo(mem, archive, SMALL, progress=lambda done, total: calls.append((done, total)),
                 series_path=series_file)
    assert calls == [(i, STEPS) for i in range(1, STEPS + 1)]

    logged = AGENTS * STEPS
    assert s.actions_logged == logged == archive.count(SIM) == s.archived_actions
    assert s.archive_rows == archive.count() == logged
    assert sum(s.action_counts.values()) == logged
    assert set(s.action_counts) == set(TYPES)
    rows = archive.read(SIM)
    assert len({(a.agent_id, a.action_id) for a in rows}) == logged  # each exactly once

    # the tiers: what the summary says is what Redis holds
    stm = zcard_sum(r, "action:timeline")
    im = zcard_sum(r, "im:action:timeline")
    assert (s.stm_actions, s.im_actions) == (stm, im)
    assert stm == AGENTS * STM_STEPS
    assert im == AGENTS * IM_CAPACITY
    assert s.moved_to_im == logged - stm
    assert s.evicted_from_im == s.moved_to_im - im
    assert sum(mem.actions.type_counts(SIM).values()) == stm  # the simulation indices: STM

    # memory
    used = int(r.info("memory")["used_memory"])
    assert 0 < s.used_memory <= s.peak_used_memory
    assert 0.5 * used < s.used_memory < 2 * used
    assert s.seconds > 0
    assert s.actions_per_second > 0
    assert 0 < s.memory_queries < 2 * logged

    # the series: one point per maintenance, the last one is the final state
    assert [p.step for p in s.series] == list(range(4, STEPS, 5))
    last = s.series[-1]
    assert (last.stm, last.im, last.archived) == (stm, im, logged)
    assert all(p.used_memory > 0 for p in s.series)
    assert max(p.used_memory for p in s.series) <= s.peak_used_memory
    assert all(p.stm <= AGENTS * STM_STEPS for p in s.series)

    # the example queries
    q = {x.name: x for x in s.queries}
    assert set(q) == {"by_type", "high_reward", "recent_across_tiers", "history_across_tiers",
                      "relative", "at_step", "type_counts"}
    assert all(x.latency_ms > 0 and x.call for x in s.queries)
    assert q["recent_across_tiers"].results == STM_STEPS + IM_CAPACITY
    assert q["history_across_tiers"].results == STM_STEPS + IM_CAPACITY
    assert q["at_step"].results == AGENTS
    assert q["relative"].results == 1

    # JSON: the summary round-trips, the series file holds it
    data = s.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert json.loads(series_file.read_text()) == data
    assert load_series(series_file, SIM) == [vars(p) for p in s.series]


def test_actions_are_agentfarm_shaped(mem: agentmem.Memory, archive: Archive) -> None:
    run_demo(mem, archive, SMALL)
    rows = archive.read(SIM)
    agents = {SMALL.agent_id(n) for n in range(AGENTS)}
    assert {a.agent_id for a in rows} == agents
    keys = {"move": {"old_position", "new_position", "distance"},
            "gather": {"amount_gathered", "resource_id"},
            "share": {"amount_shared", "target_id", "success"},
            "attack": {"damage_dealt", "target_id", "target_position", "success"},
            "reproduce": {"success"}, "defend": {"is_defending"}, "pass": {"reason"}}
    for a in rows:
        assert a.action_type in TYPES
        assert keys[a.action_type] <= set(a.details)
        assert a.position is not None
        assert 0 <= a.position[0] <= SMALL.width
        assert 0 <= a.position[1] <= SMALL.height
        assert a.reward is not None
        assert a.resources_before is not None
        assert a.resources_after is not None
        assert a.resources_after >= 0
        if a.action_type in ("share", "attack"):
            assert a.action_target_id in agents - {a.agent_id}
            assert a.details["target_id"] == a.action_target_id
        else:
            assert a.action_target_id is None
    # the agents behave: they gather, and do more than one kind of thing
    assert len({a.action_type for a in rows}) >= 5


def test_deterministic_for_a_seed(mem: agentmem.Memory, r: redis.Redis, tmp_path: Path) -> None:
    runs = []
    for n, seed in enumerate((7, 7, 8)):
        r.flushdb()
        with open_archive(tmp_path / f"run{n}.db") as archive:
            summary = run_demo(mem, archive, replace(SMALL, seed=seed))
            runs.append((content(archive, SIM), summary.action_counts, summary.stm_actions,
                         summary.im_actions))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_refuses_a_simulation_the_stores_hold(mem: agentmem.Memory, archive: Archive,
                                              tmp_path: Path) -> None:
    small = DemoConfig(agents=3, steps=4, simulation_id=SIM)
    run_demo(mem, archive, small)
    with pytest.raises(ConfigError, match="archive already holds"):
        run_demo(mem, archive, small)
    with open_archive(tmp_path / "other.db") as fresh, \
            pytest.raises(ConfigError, match="Redis already holds"):
        run_demo(mem, fresh, small)  # Redis still holds its agents
    other = run_demo(mem, archive, replace(small, simulation_id="other", agent_prefix="b"))
    assert other.actions_logged == other.archived_actions == 12
    assert archive.count() == 24


@pytest.mark.parametrize("options", [
    {"agents": 0}, {"steps": -1}, {"steps": True}, {"seed": 1.5}, {"width": 0},
    {"height": float("inf")}, {"simulation_id": "a b"}, {"simulation_id": "x" * 70},
    {"stm_steps": 0}, {"stm_capacity": None}, {"im_capacity": 2.0}, {"maintain_every": 0},
    {"recall_chance": 1.5}, {"agent_prefix": "a:"}, {"agent_prefix": 3},
])
def test_bad_config(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DemoConfig(**options)


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG), path
    assert len(data) > 1024, path


def test_report_with_and_without_a_series(mem: agentmem.Memory, archive: Archive,
                                          tmp_path: Path) -> None:
    series_file = tmp_path / "series.json"
    run_demo(mem, archive, SMALL, series_path=series_file)

    full = write_report(mem, archive, SIM, tmp_path / "full", series_path=series_file)
    assert [p.name for p in full] == [f"{SIM}-action-mix.png", f"{SIM}-rewards.png",
                                      f"{SIM}-memory-tiers.png", f"{SIM}-tiers-now.png"]
    for p in full:
        assert p.parent == tmp_path / "full"
        check_png(p)

    bare = write_report(mem, archive, SIM, tmp_path / "bare")
    assert [p.name for p in bare] == [f"{SIM}-action-mix.png", f"{SIM}-rewards.png",
                                      f"{SIM}-tiers-now.png"]
    missing = write_report(mem, archive, SIM, tmp_path / "missing",
                           series_path=tmp_path / "nothing.json")
    assert [p.name for p in missing] == [p.name for p in bare]
    archive_only = write_report(None, archive, SIM, tmp_path / "archive_only")
    assert [p.name for p in archive_only] == [f"{SIM}-action-mix.png", f"{SIM}-rewards.png"]
    for p in bare + missing + archive_only:
        check_png(p)


def test_report_refuses_what_it_cannot_draw(mem: agentmem.Memory, archive: Archive,
                                            tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no action"):
        write_report(mem, archive, "nothing", tmp_path)
    series_file = tmp_path / "series.json"
    run_demo(mem, archive, DemoConfig(agents=3, steps=4, simulation_id=SIM),
             series_path=series_file)
    with pytest.raises(InvalidInput, match="not 'other'"):
        load_series(series_file, "other")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InvalidInput):
        write_report(mem, archive, SIM, tmp_path, series_path=bad)

