"""Pure rules of the archive review: ``same_action`` compares exactly (float32 only for
the fields named), and free-text fields refuse NUL. No server is needed."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from agentmem import Action
from agentmem.errors import InvalidInput
from agentmem.model.records import same_action

A = Action(agent_id="a1", simulation_id="s", step_number=1, action_type="move",
           action_id="a1-1-move", reward=1e-13, details={"t": 1700000000.0, "qty": 1})


def _with(**changes: object) -> Action:
    return Action(**{**A.__dict__, **changes})


def test_same_action_ignores_only_the_write_time() -> None:
    assert same_action(A, _with(stored_at=1_800_000_000))


@pytest.mark.parametrize("changes", [
    {"details": {"t": 1700000000.0, "qty": 1.0}},
    {"details": {"t": 1700000000.5, "qty": 1}},
    {"reward": -1e-13},
    {"reward": 1e-13 + 1e-29},
    {"details": {"t": -0.0, "qty": 1}},
])
def test_same_action_is_exact(changes: dict[str, object]) -> None:
    assert not same_action(A, _with(**changes))
    assert not same_action(_with(**changes), A)


def test_float32_fields_compare_as_a_real_column_keeps_them() -> None:
    third = 1 / 3
    stored = float(np.float32(third))
    assert same_action(_with(reward=third), _with(reward=stored), float32={"reward"})
    assert not same_action(_with(reward=third), _with(reward=stored))  # not named: exact
    up = float(np.nextafter(np.float32(third), np.float32(1)))
    assert not same_action(_with(reward=third), _with(reward=up), float32={"reward"})
    assert not same_action(_with(reward=0.0), _with(reward=-0.0), float32={"reward"})


def test_a_value_halfway_between_two_float32s_matches_either() -> None:
    lo = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    hi = float(np.nextafter(np.float32(lo), np.float32(1)))
    mid = (lo + hi) / 2  # a double exactly halfway
    for stored in (lo, hi):
        assert same_action(_with(reward=mid), _with(reward=stored), float32={"reward"})


@pytest.mark.parametrize("field", ["module_type", "module_id", "state_before_id",
                                   "state_after_id"])
def test_nul_in_a_text_field_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidInput, match=f"{field}.*NUL"):
        _with(**{field: "a\x00b"})
    assert getattr(_with(**{field: "a\x01b"}), field) == "a\x01b"  # PostgreSQL holds it
