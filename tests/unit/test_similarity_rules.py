"""The parts of test_similarity.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import redis

import agentmem
from agentmem.model.records import Action
from agentmem.search.similarity import (
    SimilarityIndex,
    top_k,
)

TYPES = ("move", "eat", "attack")


def act(agent: str, step: int, vec: Sequence[float] | None, kind: str = "move",
        **extra: Any) -> Action:
    emb = None if vec is None else np.asarray(vec, dtype=np.float32)
    return Action(agent_id=agent, simulation_id="s1", step_number=step, action_type=kind,
                  embedding=emb, **extra)


def naive(r: redis.Redis, agent: str, query: np.ndarray, k: int, types: Sequence[str] | None = None,
          start: int | None = None, end: int | None = None) -> list[tuple[str, float]]:
    """Every hash of the timeline read with HGETALL, scored in float64, sorted by
    (score desc, step desc, id desc)."""
    rows = []
    for member, step in r.zrange(f"agent:{agent}:action:timeline", 0, -1, withscores=True):
        h = r.hgetall(f"agent:{agent}:action:{member.decode()}")
        if not h or b"embedding" not in h:
            continue
        if types is not None and h[b"action_type"].decode() not in types:
            continue
        if (start is not None and step < start) or (end is not None and step > end):
            continue
        v = np.frombuffer(h[b"embedding"], dtype="<f4").astype(np.float64)
        nv = np.linalg.norm(v)
        score = float(v @ query / (nv * np.linalg.norm(query))) if nv else 0.0
        rows.append((score, step, member))
    rows.sort(key=lambda t: (-t[0], -t[1], tuple(-b for b in t[2])))
    return [(m.decode(), s) for s, _, m in rows[:k]]


def check(found: list[Any], expected: list[tuple[str, float]], eps: float = 1e-5) -> None:
    """Same length, same scores (to float32 precision); the same ids wherever the
    scores are not within ``eps`` of another candidate's (a near tie may go either way)."""
    assert len(found) == len(expected)
    got = [(m.action.action_id, m.score) for m in found]
    for (gid, gs), (eid, es) in zip(got, expected, strict=True):
        assert gs == pytest.approx(es, abs=eps)
        if gid != eid:
            assert abs(gs - es) <= eps, (got, expected)
    assert all(a[1] >= b[1] - eps for a, b in itertools.pairwise(got))


@pytest.fixture
def index(mem: agentmem.Memory) -> Iterator[SimilarityIndex]:
    idx = SimilarityIndex(mem, batch_size=37)  # several batches per read
    yield idx
    idx.close()


def test_top_k_pure_ties_and_filters() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [3, 1, 2]  # ties: the higher (newer) row first
    assert top_k(scores, 10).tolist() == [3, 1, 2, 0, 4]
    mask = np.array([True, False, True, False, True])
    assert top_k(scores, 2, mask).tolist() == [2, 0]
    assert top_k(scores, 0).tolist() == []


