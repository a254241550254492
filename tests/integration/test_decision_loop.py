"""docs/examples/decision_loop.py runs, remembers every decision, and its agents learn.

The example is loaded from its docs path and run against each server of the
``server`` fixture (Redis and Valkey), on the flushed database of ``r``.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

import agentmem
from agentmem.model.records import Action

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "decision_loop.py"
BATCHED = EXAMPLE.with_name("batched_loop.py")
AGENTS, STEPS, SEED = 4, 200, 7


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_loop_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses/pydantic look modules up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_decision_loop(example: ModuleType, server, r: redis.Redis,
                       capsys: pytest.CaptureFixture[str]) -> None:
    summary = example.main(server.url, agents=AGENTS, steps=STEPS, seed=SEED)

    out = capsys.readouterr().out
    assert f"{AGENTS * STEPS} actions remembered ({AGENTS} agents x {STEPS} steps" in out
    assert f"first quarter {summary['first_quarter']:.3f}" in out
    assert f"last quarter {summary['last_quarter']:.3f}" in out
    assert "share of the best possible" in out

    # the agents learned: more reward, and closer to the best possible, at the end
    assert summary["last_quarter"] > summary["first_quarter"] + 0.02
    assert summary["share_last_quarter"] > summary["share_first_quarter"] + 0.05
    assert summary["share_last_quarter"] > 0.75  # a random policy gets about half
    assert 0 < summary["explored"] < AGENTS * STEPS // 4  # epsilon-greedy: some, not most

    with agentmem.connect(server.url) as mem:
        stored: list[Action] = []
        for i in range(AGENTS):
            timeline = mem.actions.timeline(f"agent_{i}")
            assert [a.step_number for a in timeline] == list(range(STEPS))
            stored += timeline
        assert len(stored) == AGENTS * STEPS == summary["actions"]
        assert sum(mem.actions.type_counts(example.SIMULATION).values()) == AGENTS * STEPS

        for a in stored:
            # every decision is findable where it was taken (radius 0), and only there
            assert a.position is not None
            assert a.reward is not None
            found = mem.actions.near(a.agent_id, *a.position, 0)
            assert a.action_id in {n.record.action_id for n in found}
            assert all(n.distance == 0 and n.record.position == a.position for n in found)
            assert a.resources_after == pytest.approx(a.resources_before + a.reward)
            assert set(a.details) == {"explored", "expected"}
        # the agents' final wealth is what their last actions recorded
        last = {a.agent_id: a for a in stored if a.step_number == STEPS - 1}
        assert {k: last[k].resources_after for k in last} == pytest.approx(summary["wealth"])
        # and the simulation-wide radius search sees the same actions as the agents' own
        x, y = stored[0].position  # type: ignore[misc]
        mine = {n.record.action_id for n in mem.actions.near(stored[0].agent_id, x, y, 1.5)}
        everyone = mem.actions.near_at(example.SIMULATION, x, y, 1.5)
        assert mine == {n.record.action_id for n in everyone
                        if n.record.agent_id == stored[0].agent_id}


def test_decision_loop_is_deterministic(example: ModuleType, server, r: redis.Redis,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    first = example.main(server.url, agents=2, steps=40, seed=3)
    r.flushdb()
    assert example.main(server.url, agents=2, steps=40, seed=3) == first
    r.flushdb()
    assert example.main(server.url, agents=2, steps=40, seed=4) != first
    capsys.readouterr()


def test_decision_loop_as_a_program() -> None:
    """``python docs/examples/decision_loop.py`` with no URL starts a server of its own."""
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{AGENTS * STEPS} actions remembered ({AGENTS} agents")
    assert lines[1].startswith("mean reward per action: first quarter ")
    assert len(lines) == 3


def test_doc_shows_the_program_as_it_is() -> None:
    """Every python excerpt of docs/decision-loop.md is in one of its examples (the loop,
    and the batched loop), indentation aside."""
    doc = (EXAMPLE.parent.parent / "decision-loop.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", doc, re.S | re.M)
    assert len(blocks) >= 4
    source = "\n".join(line.strip() for path in (EXAMPLE, BATCHED)
                       for line in path.read_text().splitlines())
    for block in blocks:
        excerpt = "\n".join(line.strip() for line in block.strip().splitlines())
        assert excerpt in source, f"docs/decision-loop.md shows code not in the example:\n{block}"


def test_the_batched_loop_takes_one_round_trip_per_step(server, r: redis.Redis,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/examples/batched_loop.py: one batch per step (counted where the runner writes
    a plan's calls and reads their replies), every decision stored."""
    from agentmem.backends.redis import RedisRunner

    spec = importlib.util.spec_from_file_location("batched_loop_example", BATCHED)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trips = [0]
    send = RedisRunner._send

    def counted(self: RedisRunner, *args: Any) -> object:
        trips[0] += 1
        return send(self, *args)

    monkeypatch.setattr(RedisRunner, "_send", counted)
    with agentmem.connect(server.url) as mem:
        assert module.run(mem, agents=30, steps=4) == 5
        assert trips[0] == 5  # 4 steps and the last step's write
        assert r.llen("simulation:sim-batched:actions") == 30 * 4
        for n in range(30):
            assert [a.step_number for a in mem.actions.recent(f"agent_{n}", 10)] == [3, 2, 1, 0]
