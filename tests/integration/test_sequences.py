"""Sequence analytics: hand-computed cases, a pure-Python reference on random
sequences, and the one-round-trip read of a window (STM, and STM + IM)."""

from __future__ import annotations

import numpy as np
import pytest

import agentmem
from agentmem.errors import InvalidInput
from agentmem.model.records import Action
from agentmem.search.sequences import (
    analyze,
    read_window,
)
from agentmem.tiers.maintenance import Tiers

# -- pure-Python references ----------------------------------------------------------------


# -- hand-computed cases -----------------------------------------------------------------


# -- reading a window from a store ------------------------------------------------------------


def _load(mem: agentmem.Memory) -> list[Action]:
    kinds = ["move", "eat", "move", "eat", "attack", "move", "eat"]
    acts = [Action(agent_id="a1", simulation_id="s1", step_number=i, action_type=k,
                   reward=None if i == 3 else float(i)) for i, k in enumerate(kinds)]
    return mem.actions.add_many(acts)


def test_read_window_stm(mem: agentmem.Memory) -> None:
    stored = _load(mem)
    w = read_window(mem, "a1")
    assert w.ids == [a.action_id for a in stored]
    assert w.types == ["move", "eat", "move", "eat", "attack", "move", "eat"]
    assert np.isnan(w.rewards[3])
    assert w.rewards[4] == 4.0
    assert w.steps.tolist() == list(range(7))
    assert set(w.tiers) == {"s"}
    assert read_window(mem, "a1", 2, 4).types == ["move", "eat", "attack"]
    assert read_window(mem, "a1", limit=2).types == ["move", "eat"]
    assert read_window(mem, "nobody").ids == []
    with pytest.raises(InvalidInput):
        read_window(mem, "a1", tiers="im")  # type: ignore[arg-type]


def test_read_window_across_tiers_matches_history(mem: agentmem.Memory) -> None:
    _load(mem)
    Tiers(mem).transition("a1", ["a1-0-move", "a1-1-eat", "a1-4-attack"])
    assert read_window(mem, "a1").types == ["move", "eat", "move", "eat"]
    w = read_window(mem, "a1", tiers="all")
    history = mem.actions.history("a1")
    assert w.ids == [a.action_id for a in history]
    assert w.types == [a.action_type for a in history]
    assert w.tiers == ["i", "i", "s", "s", "i", "s", "s"]
    assert read_window(mem, "a1", tiers="all", limit=3).ids == [a.action_id for a in history][-3:]
    report = analyze(mem, "a1", tiers="all")
    assert report.ngrams[("move", "eat")] == 3
    assert report.transitions.probability("eat", "move") == pytest.approx(1 / 2)
    assert report.best_next["move"][0] == "eat"
    assert report.cycles.lengths[2] == 2
    assert report.cycles.lengths[3] == 5
    assert report.cycles.dominant is None
