"""The texts of a number column remembered by value (``colwrite._Texts``): always
``repr``'s of floats (zeros of either sign included, however many there are and
whichever way the misses are written: remembered by their bits) and ``str``'s of ints;
given up for a column whose values do not repeat once the memo is full."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agentmem.plans.colwrite import NUMBER_TEXTS, _bits, _Texts


def test_texts_are_repr_whatever_was_remembered() -> None:
    ft = _Texts()
    cols = [[0.0, -0.0, 1.5, 2.25, 1e16, 5e-324], [-0.0, 0.0, 1.5, -1.5, 0.1 + 0.2, 1e16]]
    for col in cols * 3:
        assert ft.texts(col) == [repr(v) for v in col]
    assert ft.memo is not None
    assert set(ft.memo.values()) == {repr(v) for col in cols for v in col}  # -0.0's too


def test_zeros_of_either_sign_among_many_misses() -> None:
    # more than 1/32 of the values new: each new value written once, then the zeros
    ft = _Texts()
    rnd = random.Random(11)
    for _ in range(20):
        col = [rnd.choice((0.0, -0.0, 1.25, 2.5, rnd.random())) for _ in range(200)]
        assert ft.texts(col) == [repr(v) for v in col]
    assert ft.memo is not None
    assert {"0.0", "-0.0"} <= set(ft.memo.values())
    col = [-0.0] * 50 + [0.0] * 50
    assert ft.texts(col) == [repr(v) for v in col]


def test_ints_are_str_and_remembered() -> None:
    ft = _Texts(str)
    for step in range(50):
        col = [step] * 90 + [0, -1, 10**18, step + 1]
        assert ft.texts(col) == [str(v) for v in col]
    assert ft.memo is not None
    assert ft.memo[0] == "0"
    assert ft.memo[10**18] == str(10**18)


def test_values_that_repeat_are_remembered() -> None:
    rnd = random.Random(3)
    values = [round(rnd.uniform(0, 100), 2) for _ in range(500)]
    ft = _Texts()
    for _ in range(100):
        col = rnd.choices(values, k=100)
        assert ft.texts(col) == list(map(repr, col))
    assert ft.memo is not None
    assert len(ft.memo) == len(set(values))


def test_a_column_whose_values_never_repeat_stops_remembering() -> None:
    rnd = random.Random(5)
    ft = _Texts()
    for _ in range((NUMBER_TEXTS + 2 * 4096) // 100 + 2):
        col = [rnd.random() for _ in range(100)]
        assert ft.texts(col) == list(map(repr, col))
    assert ft.memo is None
    col = [rnd.random() for _ in range(10)]
    assert ft.texts(col) == list(map(repr, col))


class _Racing(dict):  # type: ignore[type-arg]
    """A memo into which "another thread" puts an entry right after this call's
    lookups (at the last ``get``): the values it adds are in the memo when the call
    looks for what is new, yet its lookups missed them."""

    def __init__(self, lookups: int, adds: dict[Any, str]) -> None:
        super().__init__()
        self.left, self.adds = lookups, adds

    def get(self, key: Any, default: Any = None) -> Any:
        got = super().get(key, default)
        self.left -= 1
        if self.left == 0:
            self.update(self.adds)
        return got


@pytest.mark.parametrize("many", [True, False])
def test_an_entry_another_thread_adds_meanwhile_is_still_written(many: bool) -> None:
    # many misses (7 new values in 64: each new value written once) or one (written
    # on its own); either way the last value is remembered by "another thread" between
    # the lookups and the writing
    col = [float(i % 7) for i in range(64)] if many else [1.5] * 63 + [2.5]
    for fn, values in ((repr, col), (str, [int(v * 2) for v in col])):
        keys = _bits(values) if fn is repr else values
        known = {} if many else {keys[0]: fn(values[0])}
        ft = _Texts(fn)
        memo = ft.memo = _Racing(len(values), {keys[-1]: fn(values[-1])})
        memo.update(known)
        assert ft.texts(values) == [fn(v) for v in values]
