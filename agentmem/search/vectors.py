"""Pure vector helpers of similarity search: the query check, normalisation, exact
top-k with ties to the newest, and the result type (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agentmem.errors import InvalidInput
from agentmem.model.records import Action

__all__ = ["Match", "as_query", "neg_bytes", "normalised", "text", "top_k"]


@dataclass(frozen=True)
class Match:
    """One result: the action (read fresh from the server) and its cosine similarity."""

    action: Action
    score: float


def as_query(vector: Any) -> np.ndarray:
    """The query as a 1-D float32 vector; :class:`InvalidInput` when it is not usable."""
    try:
        q = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"query must be a vector of numbers: {exc}") from None
    if q.ndim != 1 or q.size == 0:
        raise InvalidInput(f"query must be a non-empty 1-D vector, got shape {q.shape}")
    if not np.isfinite(q).all():
        raise InvalidInput("query contains NaN or infinite values")
    if not np.any(q):
        raise InvalidInput("query is the zero vector: its cosine similarity is undefined")
    return q


def normalised(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero (similarity 0)."""
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", m, m, dtype=np.float64))
    norms[norms == 0] = 1.0
    out: np.ndarray = (m / norms[:, None]).astype(np.float32, copy=False)
    return out


def top_k(scores: np.ndarray, k: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the ``k`` best scores, best first; ties go to the higher row.

    Rows are kept in timeline order (step, then id), so the higher row is the newer
    action. ``eligible`` (a boolean mask) leaves rows out. Exact: every row whose
    score equals the k-th best is considered before the tie is broken.
    """
    if eligible is not None:
        rows = np.flatnonzero(eligible)
        s = scores[rows]
    else:
        rows = np.arange(scores.shape[0])
        s = scores
    n = s.shape[0]
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < n:
        kth = s[np.argpartition(-s, k - 1)[k - 1]]
        pick = np.flatnonzero(s >= kth)
    else:
        pick = np.arange(n)
    # best score first, then the newest (highest row)
    order = np.lexsort((-rows[pick], -s[pick]))[:k]
    out: np.ndarray = rows[pick][order]
    return out


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def neg_bytes(text: str | None) -> tuple[int, ...]:
    return tuple(-b for b in (text or "").encode())


