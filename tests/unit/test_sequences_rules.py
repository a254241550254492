"""The parts of test_sequences.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict

import numpy as np
import pytest

from agentmem.errors import InvalidInput
from agentmem.search.sequences import (
    best_next,
    cycles,
    encode,
    ngram_counts,
    reward_after,
    transition_matrix,
)

# -- pure-Python references ----------------------------------------------------------------


def ref_ngrams(seq: list[str], n: int) -> dict[tuple[str, ...], int]:
    return dict(Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)))


def ref_transitions(seq: list[str]) -> dict[tuple[str, str], int]:
    return dict(Counter(itertools.pairwise(seq)))


def ref_reward_after(seq: list[str], rewards: list[float | None]
                     ) -> dict[tuple[str, str], tuple[float, int]]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for i in range(len(seq) - 1):
        if rewards[i + 1] is not None:
            acc[(seq[i], seq[i + 1])].append(rewards[i + 1])  # type: ignore[arg-type]
    return {k: (sum(v) / len(v), len(v)) for k, v in acc.items()}


def ref_period_length(seq: list[str], p: int) -> int:
    """The longest suffix with period p, by trying every length."""
    best = min(p, len(seq))
    for length in range(len(seq) + 1):
        s = seq[len(seq) - length:]
        if all(s[i] == s[i + p] for i in range(len(s) - p)):
            best = max(best, length)
    return best


# -- hand-computed cases -----------------------------------------------------------------


def test_hand_computed() -> None:
    seq = ["move", "eat", "move", "eat", "move", "attack"]
    assert ngram_counts(seq, 2) == {("move", "eat"): 2, ("eat", "move"): 2,
                                    ("move", "attack"): 1}
    assert list(ngram_counts(seq, 2))[-1] == ("move", "attack")
    assert ngram_counts(seq, 3)[("move", "eat", "move")] == 2
    assert ngram_counts(seq, 7) == {}
    t = transition_matrix(seq)
    assert t.names == ("attack", "eat", "move")
    assert t.counts.tolist() == [[0, 0, 0], [0, 0, 2], [1, 2, 0]]
    assert t.probability("move", "eat") == pytest.approx(2 / 3)
    assert t.probabilities[0].tolist() == [0.0, 0.0, 0.0]  # attack is never followed
    assert t.probability("move", "fly") == 0.0
    rewards = [None, 1.0, 0.0, 3.0, None, 5.0]
    ra = reward_after(seq, rewards)
    assert ra[("move", "eat")].mean == 2.0
    assert ra[("move", "eat")].count == 2
    assert ra[("eat", "move")].mean == 0.0
    assert ra[("eat", "move")].count == 1
    assert ra[("move", "attack")].mean == 5.0
    assert best_next(seq, rewards)["move"][0] == "attack"
    assert best_next(seq, rewards, min_count=2)["move"][0] == "eat"
    assert "attack" not in best_next(seq, rewards)


def test_cycles_hand_computed() -> None:
    c = cycles(list("xyzABCABCABC"), 6)
    assert c.lengths[3] == 9
    assert c.dominant == 3
    assert c.repeats == 3.0
    assert c.lengths[6] == 9
    assert c.lengths[2] == 2
    c = cycles(list("abab"), 4)
    assert c.dominant == 2
    assert c.lengths == {2: 4, 3: 3, 4: 4}
    assert cycles(list("aaaa")).dominant == 2
    assert cycles(list("aaaa"), min_period=1).dominant == 1
    assert cycles(list("abcd")).dominant is None
    assert cycles([]).lengths[2] == 0
    with pytest.raises(InvalidInput):
        cycles(["a"], 1)
    with pytest.raises(InvalidInput):
        ngram_counts(["a"], 0)
    with pytest.raises(InvalidInput):
        reward_after(["a", "b"], [1.0])


def test_empty_and_single() -> None:
    assert encode([]) == (pytest.approx(np.empty(0)), ())
    assert ngram_counts([], 1) == {}
    t = transition_matrix(["a"])
    assert t.counts.tolist() == [[0]]
    assert reward_after(["a"], [1.0]) == {}


@pytest.mark.parametrize("seed", range(20))
def test_against_pure_python(seed: int) -> None:
    rnd = random.Random(seed)
    alphabet = [f"t{i}" for i in range(rnd.randint(1, 6))]
    seq = [rnd.choice(alphabet) for _ in range(rnd.randint(0, 300))]
    if rnd.random() < 0.5 and seq:  # end on a repeating block
        block = seq[-rnd.randint(1, 5):]
        seq += block * rnd.randint(1, 6)
    rewards = [None if rnd.random() < 0.2 else rnd.uniform(-1, 1) for _ in seq]
    for n in (1, 2, 3):
        assert ngram_counts(seq, n) == ref_ngrams(seq, n)
    t = transition_matrix(seq)
    ref = ref_transitions(seq)
    for i, a in enumerate(t.names):
        for j, b in enumerate(t.names):
            assert t.counts[i, j] == ref.get((a, b), 0)
    got = reward_after(seq, rewards)
    want = ref_reward_after(seq, rewards)
    assert got.keys() == want.keys()
    for k, (mean, count) in want.items():
        assert got[k].count == count
        assert got[k].mean == pytest.approx(mean)
    c = cycles(seq, 7)
    for p in range(2, 8):
        assert c.lengths[p] == ref_period_length(seq, p), p
    fulls = {p: c.lengths[p] // p for p in range(2, 8)}
    best = max(fulls.values())
    assert c.dominant == (None if best < 2 else min(p for p, f in fulls.items() if f == best))
    for x, (y, stat) in best_next(seq, rewards).items():
        options = {b: v for (a, b), v in want.items() if a == x}
        assert stat.mean == pytest.approx(max(m for m, _ in options.values()))
        assert math.isclose(options[y][0], stat.mean)


# -- reading a window from a store ------------------------------------------------------------


