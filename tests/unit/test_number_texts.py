"""The texts of a number column remembered by value (``colwrite._Texts``): always
``repr``'s of floats (zeros of either sign included, however many there are and
whichever way the misses are written: remembered by their bits) and ``str``'s of ints;
given up for a column whose values do not repeat once the memo is full."""

from __future__ import annotations

import random

from agentmem.plans.colwrite import NUMBER_TEXTS, _Texts


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
