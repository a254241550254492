"""Sequence analytics over an agent's action types, vectorised with numpy.

Pure functions take a sequence of action types in time order (oldest first; a
list of strings or a numpy array) and, where rewards matter, the rewards of the
same actions (``NaN`` or ``None`` where an action has none):

- :func:`ngram_counts`: how often each run of ``n`` consecutive types occurs;
- :func:`transition_matrix`: counts and probabilities of "type X, then type Y";
- :func:`reward_after`: the mean reward of the *next* action for each pair
  (X, next), and :func:`best_next`: after X, which next type paid best;
- :func:`cycles`: for each period ``p``, the longest suffix (the most recent
  actions) that repeats with period ``p``, and the dominant period.

:func:`read_window` reads an agent's types, steps and rewards in a step range
(short-term memory, or short-term and intermediate with ``tiers="all"``) in one
round trip, and :func:`analyze` runs every analysis over it. Definitions are in
``docs/search.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agentmem.backends.redis import Memory
from agentmem.errors import InvalidInput
from agentmem.lua.search import SEQUENCE
from agentmem.plans.plan import Arg, check_limit, script_call, single

Types = Sequence[str] | np.ndarray
Rewards = Sequence[float | None] | np.ndarray


def encode(types: Types) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes of ``types`` and the names they stand for (sorted)."""
    if isinstance(types, np.ndarray) and types.ndim != 1:
        raise InvalidInput(f"types must be one-dimensional, got shape {types.shape}")
    seen: dict[str, int] = {}
    first = np.fromiter((seen.setdefault(str(t), len(seen)) for t in types), dtype=np.int64)
    if not seen:
        return np.empty(0, dtype=np.int64), ()
    names = sorted(seen)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[seen[n] for n in names]] = np.arange(len(names))
    return rank[first], tuple(names)


def _rewards(rewards: Rewards, n: int) -> np.ndarray:
    r = np.array([np.nan if v is None else v for v in rewards], dtype=np.float64) \
        if not isinstance(rewards, np.ndarray) else rewards.astype(np.float64)
    if r.shape != (n,):
        raise InvalidInput(f"rewards must have one value per action ({n}), got {r.shape}")
    return r


def ngram_counts(types: Types, n: int = 2) -> dict[tuple[str, ...], int]:
    """Occurrences of every run of ``n`` consecutive types (overlapping runs count),
    most frequent first, ties in the order of the types' names."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(f"n must be a positive int, got {n!r}")
    codes, names = encode(types)
    if codes.shape[0] < n:
        return {}
    v = len(names)
    windows = np.lib.stride_tricks.sliding_window_view(codes, n)
    if v ** n < 2 ** 62:  # one integer per n-gram: a 1-D unique, much faster
        keys = windows @ (v ** np.arange(n - 1, -1, -1, dtype=np.int64))
        uniq, counts = np.unique(keys, return_counts=True)
        grams = (uniq[:, None] // (v ** np.arange(n - 1, -1, -1, dtype=np.int64))) % v
    else:
        grams, counts = np.unique(windows, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {tuple(names[c] for c in grams[i]): int(counts[i]) for i in order}


@dataclass(frozen=True)
class Transitions:
    """``counts[i, j]``: how often type ``names[i]`` was directly followed by ``names[j]``;
    ``probabilities`` the rows divided by their sums (a row of zeros where a type is
    never followed, e.g. only the last action)."""

    names: tuple[str, ...]
    counts: np.ndarray
    probabilities: np.ndarray

    def probability(self, first: str, then: str) -> float:
        """P(next is ``then`` | this is ``first``); 0.0 for types never seen."""
        if first not in self.names or then not in self.names:
            return 0.0
        return float(self.probabilities[self.names.index(first), self.names.index(then)])


def transition_matrix(types: Types) -> Transitions:
    """The first-order transition matrix of ``types`` (see :class:`Transitions`)."""
    codes, names = encode(types)
    v = len(names)
    counts = np.zeros((v, v), dtype=np.int64)
    if codes.shape[0] >= 2:
        flat = np.bincount(codes[:-1] * v + codes[1:], minlength=v * v)
        counts = flat.reshape(v, v)
    sums = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, sums, out=np.zeros((v, v), dtype=np.float64), where=sums > 0)
    return Transitions(names, counts, probs)


@dataclass(frozen=True)
class RewardStat:
    """The mean reward of the next actions of one (type, next type) pair, over ``count``
    of them (only next actions that have a reward count)."""

    mean: float
    count: int


def reward_after(types: Types, rewards: Rewards) -> dict[tuple[str, str], RewardStat]:
    """For each pair (X, Y) of consecutive types: the mean reward of the Y actions that
    directly follow an X. Pairs whose Y actions have no reward are left out."""
    codes, names = encode(types)
    r = _rewards(rewards, codes.shape[0])
    if codes.shape[0] < 2:
        return {}
    v = len(names)
    nxt = r[1:]
    have = ~np.isnan(nxt)
    pair = (codes[:-1] * v + codes[1:])[have]
    sums = np.bincount(pair, weights=nxt[have], minlength=v * v)
    counts = np.bincount(pair, minlength=v * v)
    out: dict[tuple[str, str], RewardStat] = {}
    for p in np.flatnonzero(counts):
        out[(names[p // v], names[p % v])] = RewardStat(float(sums[p] / counts[p]),
                                                        int(counts[p]))
    return out


def best_next(types: Types, rewards: Rewards, *, min_count: int = 1
              ) -> dict[str, tuple[str, RewardStat]]:
    """After each type X: the next type whose actions paid best on average (at least
    ``min_count`` of them); ties go to more observations, then to the name."""
    best: dict[str, tuple[str, RewardStat]] = {}
    for (x, y), stat in reward_after(types, rewards).items():
        if stat.count < min_count:
            continue
        cur = best.get(x)
        if cur is None or (stat.mean, stat.count, _neg(y)) > (cur[1].mean, cur[1].count,
                                                                _neg(cur[0])):
            best[x] = (y, stat)
    return best


def _neg(text: str) -> tuple[int, ...]:
    return (*tuple(-ord(c) for c in text), 1)


@dataclass(frozen=True)
class Cycles:
    """Periodic suffixes of a sequence.

    ``lengths[p]`` is the length of the longest suffix ``s`` with period ``p``
    (``s[i] == s[i + p]`` for every ``i``; at least ``min(p, len)``: any suffix of
    length ``p`` or less has period ``p``). ``dominant`` is the period whose suffix
    repeats the most full times, with at least two repetitions (ties: the smaller
    period), or ``None``; ``repeats`` is that suffix's length divided by its period.
    """

    lengths: dict[int, int]
    dominant: int | None
    repeats: float


def cycles(types: Types, max_period: int = 8, *, min_period: int = 2) -> Cycles:
    """The periodic suffixes for periods ``min_period..max_period`` (see :class:`Cycles`).

    The specification's ABAB rule (section 8.3, over the newest four) is
    ``cycles(...).lengths[2] >= 4``.
    """
    if (isinstance(max_period, bool) or not isinstance(max_period, int)
            or isinstance(min_period, bool) or not isinstance(min_period, int)
            or min_period < 1 or max_period < min_period):
        raise InvalidInput(f"periods must satisfy 1 <= min_period <= max_period, got "
                           f"{min_period!r}..{max_period!r}")
    codes, _ = encode(types)
    n = codes.shape[0]
    lengths: dict[int, int] = {}
    dominant, best = None, (0, 0)
    for p in range(min_period, max_period + 1):
        if n <= p:
            lengths[p] = n
            continue
        mismatch = np.flatnonzero(codes[p:] != codes[:-p])
        # the suffix after the last mismatch s[i] != s[i + p] (index i in 0..n-p-1)
        length = n if mismatch.size == 0 else n - (int(mismatch[-1]) + 1)
        lengths[p] = length
        full = length // p
        if full >= 2 and (full, -p) > best:
            best, dominant = (full, -p), p
    repeats = lengths[dominant] / dominant if dominant is not None else 0.0
    return Cycles(lengths, dominant, repeats)


# -- reading from a store ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """An agent's actions in time order (step, then id): the columns the analytics use.

    ``tiers[i]`` is ``"s"`` (short-term) or ``"i"`` (intermediate); ``rewards[i]`` is
    ``NaN`` where the action has none (intermediate memory stores 0.0 for none).
    """

    ids: list[str]
    steps: np.ndarray
    types: list[str]
    rewards: np.ndarray
    tiers: list[str]


def read_window(memory: Memory, agent_id: str, start: int | None = None,
                end: int | None = None, *, tiers: Literal["stm", "all"] = "stm",
                limit: int | None = None) -> Window:
    """The agent's actions with ``start <= step <= end`` in short-term memory (or, with
    ``tiers="all"``, short-term and intermediate), oldest first; one round trip.

    ``limit`` keeps the newest ``limit`` (at most 10**12). Actions whose hash is gone
    are skipped and the timelines read on past them, so a limit is filled with the newest
    actions that exist, as ``history(..., newest_first=True, limit=limit)`` (reversed).
    The order is that of ``memory.actions.history``: step, then id.
    """
    if tiers not in ("stm", "all"):
        raise InvalidInput(f"tiers must be 'stm' or 'all', got {tiers!r}")
    n = check_limit(limit)
    lay = memory.actions.layout
    lo = "-inf" if start is None else str(int(start))
    hi = "+inf" if end is None else str(int(end))
    argv: list[Arg] = [lo, hi, n, "1" if limit is not None else "0"]
    prefix, suffix = lay.record_key_parts("action", agent_id=agent_id)
    wire = lay.action.codec.wire
    argv += ["s", lay.key("timeline", agent_id=agent_id), prefix, suffix,
             wire("action_type"), wire("reward")]
    if tiers == "all":
        iprefix, isuffix = lay.record_key_parts("im_action", agent_id=agent_id)
        iwire = lay.im_action.codec.wire
        argv += ["i", lay.key("im_timeline", agent_id=agent_id), iprefix, isuffix,
                 iwire("action_type"), iwire("reward")]
    # the agent's keys share one slot (layout 2): the call runs there on a cluster
    route = lay.key("timeline", agent_id=agent_id)
    raw = memory.runner.run(single(script_call(SEQUENCE, argv, route=route), lambda r: r))
    # one sequence, merged by the script: newest first with a limit, put back in time order
    rows = [raw[i:i + 5] for i in range(0, len(raw), 5)]
    if limit is not None:
        rows.reverse()
    return Window(
        ids=[row[1].decode() for row in rows],
        steps=np.array([float(row[2]) for row in rows], dtype=np.float64),
        types=[row[3].decode() for row in rows],
        rewards=np.array([np.nan if row[4] is None else float(row[4]) for row in rows],
                         dtype=np.float64),
        tiers=[row[0].decode() for row in rows],
    )


@dataclass(frozen=True)
class SequenceReport:
    """Every analysis of :func:`analyze` over one window."""

    window: Window
    ngrams: dict[tuple[str, ...], int]
    transitions: Transitions
    reward_after: dict[tuple[str, str], RewardStat]
    best_next: dict[str, tuple[str, RewardStat]]
    cycles: Cycles


def analyze(memory: Memory, agent_id: str, start: int | None = None, end: int | None = None,
            *, tiers: Literal["stm", "all"] = "stm", limit: int | None = None, n: int = 2,
            max_period: int = 8) -> SequenceReport:
    """:func:`read_window` (one round trip), then every analysis over it."""
    w = read_window(memory, agent_id, start, end, tiers=tiers, limit=limit)
    return SequenceReport(
        window=w,
        ngrams=ngram_counts(w.types, n),
        transitions=transition_matrix(w.types),
        reward_after=reward_after(w.types, w.rewards),
        best_next=best_next(w.types, w.rewards),
        cycles=cycles(w.types, max_period),
    )
