"""The AgentFarm decision-loop helper: a step's memory of every agent in one round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmem.backends.redis import RedisRunner
from agentmem.backends.sql import open_archive
from agentmem.errors import InvalidInput
from agentmem.integrations.agentfarm import AgentFarmLogger, AgentRecall, step_memory

SIM = "sim_recall"
TYPES = ["move", "gather", "attack"]


def _trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Round trips: plans run (``_send``) and writes sent ahead (``start``)."""
    count = [0]
    send, start = RedisRunner._send, RedisRunner.start

    def counted(self, *args):  # type: ignore[no-untyped-def]
        count[0] += 1
        return send(self, *args)

    def counted_start(self, plan):  # type: ignore[no-untyped-def]
        count[0] += 1
        return start(self, plan)

    monkeypatch.setattr(RedisRunner, "_send", counted)
    monkeypatch.setattr(RedisRunner, "start", counted_start)
    return count


def _log_steps(lg: AgentFarmLogger, agents: list[int], steps: range) -> None:
    for step in steps:
        for n, agent in enumerate(agents):
            lg.log_agent_action(step, agent, TYPES[(step + n) % 3], reward=step / 10)
        lg.flush_if_needed()


def test_recall_equals_the_individual_queries_in_one_round_trip(mem, tmp_path: Path,
                                                                 monkeypatch):
    agents = list(range(20))
    with open_archive(tmp_path / "a.db") as archive, \
            AgentFarmLogger(mem, archive, SIM) as lg:
        _log_steps(lg, agents, range(12))
        mem.actions.recent("0", 1)  # the scripts are loaded: one round trip below
        trips = _trips(monkeypatch)
        got = lg.recall(agents, recent=5, by_type=["move", "attack"], limit=3)
        assert trips[0] == 1
        assert set(got) == {str(a) for a in agents}
        for a in agents:
            mine = got[str(a)]
            assert isinstance(mine, AgentRecall)
            assert mine.recent == mem.actions.recent(str(a), 5)
            assert len(mine.recent) == 5
            assert mine.by_type["move"] == mem.actions.by_type(str(a), "move", limit=3)
            assert mine.by_type["attack"] == mem.actions.by_type(str(a), "attack", limit=3)
            assert set(mine.by_type) == {"move", "attack"}


def test_recall_sees_the_actions_still_buffered(mem, tmp_path: Path, monkeypatch):
    with open_archive(tmp_path / "a.db") as archive, \
            AgentFarmLogger(mem, archive, SIM) as lg:
        _log_steps(lg, [1, 2], range(3))
        lg.log_agent_action(3, 1, "rest")  # buffered, not in Redis yet
        assert lg._action_buffer
        trips = _trips(monkeypatch)
        got = lg.recall([1, 2], recent=2, by_type=["rest"])
        assert trips[0] == 2  # the buffered actions' write, then every agent's reads
        assert not lg._action_buffer
        assert got["1"].recent[0].action_type == "rest"
        assert [a.step_number for a in got["1"].by_type["rest"]] == [3]
        assert got["2"].by_type["rest"] == []


def test_step_memory_on_a_memory_and_its_bad_input(mem):
    assert step_memory(mem, ["a1", "a2"]) == {"a1": AgentRecall([], {}),
                                              "a2": AgentRecall([], {})}
    with pytest.raises(InvalidInput):
        step_memory(mem, ["a1"], by_type="move")
    with pytest.raises(InvalidInput):
        step_memory(mem, ["a1"], recent=-1)
    with pytest.raises(InvalidInput):
        step_memory(mem, ["bad id with spaces\n"])
