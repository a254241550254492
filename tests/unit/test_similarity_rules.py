"""The parts of test_similarity.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import numpy as np

from agentmem.search.similarity import (
    top_k,
)


def test_top_k_pure_ties_and_filters() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [3, 1, 2]  # ties: the higher (newer) row first
    assert top_k(scores, 10).tolist() == [3, 1, 2, 0, 4]
    mask = np.array([True, False, True, False, True])
    assert top_k(scores, 2, mask).tolist() == [2, 0]
    assert top_k(scores, 0).tolist() == []


