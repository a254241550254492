"""Pure vector helpers of similarity search: the query check, normalisation, exact
top-k with ties to the newest, and the result type (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agentmem.errors import InvalidInput
from agentmem.model.records import Action

__all__ = ["Match", "as_query", "best", "check_steps", "exact_scores", "neg_bytes",
           "normalised", "text", "top_k", "unit_query"]


@dataclass(frozen=True)
class Match:
    """One result: the action (read fresh from the server) and its cosine similarity."""

    action: Action
    score: float


def as_query(vector: Any) -> np.ndarray:
    """The query as a 1-D float32 vector of real numbers (ints or floats: no strings,
    booleans or complex numbers); :class:`InvalidInput` when it is not usable."""
    try:
        raw = np.asarray(vector)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"query must be a vector of numbers: {exc}") from None
    if raw.dtype.kind not in "iuf":
        raise InvalidInput(f"query must be a vector of real numbers (ints or floats), got "
                           f"{raw.dtype} values")
    with np.errstate(over="ignore"):
        q = raw.astype(np.float32)
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
    wide = m.astype(np.float64)
    norms = np.sqrt((wide * wide).sum(axis=1))  # per row, the same for equal rows
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


def unit_query(q: np.ndarray) -> np.ndarray:
    """The query scaled to unit length (float32), as the rows are."""
    out: np.ndarray = (q / np.linalg.norm(q.astype(np.float64))).astype(np.float32)
    return out


def exact_scores(rows: np.ndarray, qn: np.ndarray) -> np.ndarray:
    """Each row's dot product with ``qn``: the float32 products exactly in float64,
    summed row by row, rounded to float32. A function of the row's values alone, so
    equal embeddings score equally wherever they are (a matrix product's rounding
    depends on the row's position)."""
    out: np.ndarray = ((rows.astype(np.float64) * qn.astype(np.float64)).sum(axis=1)
                       .astype(np.float32))
    return out


def best(matrix: np.ndarray, qn: np.ndarray, k: int,
         eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the ``k`` best :func:`exact_scores` (as :func:`top_k`: ties to the
    higher row) and their scores. A float32 matrix product picks the candidates: every
    row within twice its error bound of the k-th best, whose exact scores decide."""
    rows = np.flatnonzero(eligible) if eligible is not None else np.arange(matrix.shape[0])
    if rows.size == 0 or k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    if k < rows.size:
        fast = matrix[rows] @ qn if eligible is not None else matrix @ qn
        kth = fast[np.argpartition(-fast, k - 1)[k - 1]]
        # |fast - exact| <= d * 2**-24 for unit rows (plus the final rounding)
        err = (matrix.shape[1] + 4) * 2.0 ** -23
        rows = rows[fast >= kth - 2 * err]
    scores = exact_scores(matrix[rows], qn)
    pick = top_k(scores, k)
    return rows[pick], scores[pick]


def check_steps(start: object, end: object) -> None:
    """``start`` and ``end`` are int steps or ``None``."""
    for name, v in (("start", start), ("end", end)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidInput(f"{name} must be an int step or None, got {v!r}")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def neg_bytes(text: str | None) -> tuple[int, ...]:
    return tuple(-b for b in (text or "").encode())


