"""The texts of a float column remembered by value (``colwrite._FloatTexts``): always
``repr``'s, zeros of either sign included; given up for a column whose values do not
repeat once the memo is full."""

from __future__ import annotations

import random

from agentmem.plans.colwrite import FLOAT_TEXTS, _FloatTexts


def test_texts_are_repr_whatever_was_remembered() -> None:
    ft = _FloatTexts()
    cols = [[0.0, -0.0, 1.5, 2.25, 1e16, 5e-324], [-0.0, 0.0, 1.5, -1.5, 0.1 + 0.2, 1e16]]
    for col in cols * 3:
        assert ft.texts(col) == [repr(v) for v in col]
    assert ft.memo is not None
    assert 0.0 not in ft.memo  # neither zero is remembered: 0.0 == -0.0


def test_values_that_repeat_are_remembered() -> None:
    rnd = random.Random(3)
    values = [round(rnd.uniform(0, 100), 2) for _ in range(500)]
    ft = _FloatTexts()
    for _ in range(100):
        col = rnd.choices(values, k=100)
        assert ft.texts(col) == list(map(repr, col))
    assert ft.memo is not None
    assert len(ft.memo) == len({v for v in values if v})


def test_a_column_whose_values_never_repeat_stops_remembering() -> None:
    rnd = random.Random(5)
    ft = _FloatTexts()
    for _ in range((FLOAT_TEXTS + 2 * 4096) // 100 + 2):
        col = [rnd.random() for _ in range(100)]
        assert ft.texts(col) == list(map(repr, col))
    assert ft.memo is None
    col = [rnd.random() for _ in range(10)]
    assert ft.texts(col) == list(map(repr, col))
