"""add_columns' column-wise fast path on real servers: columns it takes (numpy number
columns, an ``(n, 2)`` position array, flat details, repeated ids) store exactly the
keys and values add_rows of the same rows stores, with the same ids, in every key
layout; and for IMAction, whose ids are given."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis
from test_rows import snapshot

from agentmem.model.records import IMAction
from benchmarks.bench import make_actions
from benchmarks.ingest import to_columns


def _rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The columns as rows, with the Python values the row path reads (``tolist``)."""
    listed = {k: v.tolist() if isinstance(v, np.ndarray) and k != "embedding" else v
              for k, v in columns.items()}
    n = len(next(iter(listed.values())))
    return [{k: v[i] for k, v in listed.items()} for i in range(n)]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_columns_store_what_the_same_rows_store(r: redis.Redis, connect: Any,
                                                version: int) -> None:
    columns = to_columns(make_actions(20, 15, 5))
    n = len(columns["agent_id"])
    columns["reward"][::7] = -0.0
    columns["action_target_id"] = [None if i % 3 else f"agent_{i % 20}" for i in range(n)]
    columns["stored_at"] = [None] * n
    columns["embedding"] = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    # the same agent, step and type in several rows: renumbered .1, .2 in the call
    columns["step_number"][:4] = 0
    columns["agent_id"][:4] = ["agent_0"] * 4
    columns["action_type"][:4] = ["move"] * 4
    mem = connect(layout_version=version)
    assert mem.actions._row_planner().columns.prepare(columns, mem.actions.check_values)
    ids = mem.actions.add_columns(columns)
    assert ids[:4] == ["agent_0-0-move", "agent_0-0-move.1", "agent_0-0-move.2",
                       "agent_0-0-move.3"]
    want = snapshot(r)
    assert len(want) > n
    r.flushdb()
    assert connect(layout_version=version).actions.add_rows(_rows(columns)) == ids
    assert snapshot(r) == want


@pytest.mark.parametrize("version", [1, 3])
def test_im_action_columns_with_their_ids(r: redis.Redis, connect: Any, version: int) -> None:
    n = 30
    columns = {"action_id": [f"a{i % 3}-{i}-move" for i in range(n)],
               "agent_id": [f"a{i % 3}" for i in range(n)], "simulation_id": ["s1"] * n,
               "step_number": np.arange(n), "action_type": ["move"] * n,
               "reward": [None if i % 4 else i / 8 for i in range(n)],
               "importance": np.linspace(0.0, 1.0, n)}
    mem = connect(layout_version=version)
    assert mem.im_actions._row_planner().columns.prepare(columns, None)
    ids = mem.im_actions.add_columns(columns)
    assert ids == columns["action_id"]
    want = snapshot(r)
    r.flushdb()
    stored = connect(layout_version=version).im_actions.add_many(
        [IMAction(**row) for row in _rows(columns)])
    assert [a.action_id for a in stored] == ids
    assert snapshot(r) == want
