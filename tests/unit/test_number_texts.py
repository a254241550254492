"""The texts of a number column written a whole column at a time
(``agentmem.plans.numtext.column_texts``): always ``repr``'s of floats and ``str``'s of
ints, whatever the values (orjson's texts where they are the same, the others by
``repr``/``str``), in columns of any size."""

from __future__ import annotations

import random
import struct
from typing import Any

import numpy as np
import pytest

from agentmem.plans import numtext
from agentmem.plans.numtext import column_texts


def texts(col: list[Any], fn: Any) -> list[str]:
    return [t if type(t) is str else t.decode() for t in column_texts(col, fn)]


def random_doubles(rnd: random.Random, k: int) -> list[float]:
    """Finite doubles of random bits: every exponent, sign and mantissa."""
    out = []
    while len(out) < k:
        (v,) = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))
        if v - v == 0.0:
            out.append(v)
    return out


def test_this_orjson_is_used() -> None:
    column_texts([1.5], repr)
    assert numtext._usable[0] is True


def test_random_bits_of_every_magnitude_are_repr() -> None:
    rnd = random.Random(1)
    for _ in range(20):
        col = random_doubles(rnd, 5_000)
        assert texts(col, repr) == list(map(repr, col))


@pytest.mark.parametrize("exp", range(-12, 20))
def test_each_decimal_magnitude_is_repr(exp: int) -> None:
    # where repr turns to an exponent (below 1e-4, from 1e16) and around it
    rnd = random.Random(exp)
    p = float(f"1e{exp}")
    col = [s * v for v in (p, p * (1 + 2 ** -52), p * (1 - 2 ** -53)) for s in (1, -1)]
    col += [rnd.uniform(1, 10) * p for _ in range(3_000)]
    col += [round(rnd.uniform(1, 10), 2) * p for _ in range(3_000)]
    assert texts(col, repr) == list(map(repr, col))


def test_a_few_values_written_otherwise_among_many_ordinary_ones() -> None:
    # orjson writes 1e-05 as 0.00001 and 3e-07 as 3e-7: those few go by repr, found
    # wherever they are in the column (first, last, next to each other)
    rnd = random.Random(2)
    for _ in range(50):
        col = [rnd.uniform(-1, 1) for _ in range(1_000)]
        for _ in range(rnd.randrange(1, 60)):
            col[rnd.randrange(len(col))] = rnd.choice((1e-05, -3e-07, 2.5e-09, 1e-4 * 0.99))
        col[0], col[-1] = 7e-06, -7e-06
        assert texts(col, repr) == list(map(repr, col))


def test_a_column_of_small_values_is_repr() -> None:
    # more texts to put right than are found by counting commas: by where texts end
    rnd = random.Random(3)
    col = [rnd.uniform(-1e-4, 1e-4) for _ in range(2_000)]
    assert texts(col, repr) == list(map(repr, col))
    for _ in range(30):  # many, among ordinary values, first and last too
        col = [rnd.uniform(-1, 1) for _ in range(1_000)]
        for _ in range(rnd.randrange(65, 400)):
            col[rnd.randrange(len(col))] = rnd.uniform(-1e-4, 1e-4)
        col[0], col[-1] = 3e-05, 1e-300
        assert texts(col, repr) == list(map(repr, col))


def test_zeros_extremes_and_rounded_values() -> None:
    col = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
           0.1 + 0.2, 1 / 3, 2.0 ** 53, 1e16, 1e15, 9999999999999998.0, 123456789012345.6,
           100.00001, 1.0, -1.0]
    rnd = random.Random(4)
    col += [round(rnd.uniform(-1000, 1000), k) for k in range(6) for _ in range(2_000)]
    assert texts(col, repr) == list(map(repr, col))


def test_ints_are_str() -> None:
    col = [0, -1, 7, 10 ** 18, -(2 ** 63), 2 ** 63 - 1, 2 ** 64 - 1, *range(-500, 500)]
    assert texts(col, str) == list(map(str, col))
    # beyond 64 bits (orjson refuses them): value by value
    big = [2 ** 64, -(2 ** 64) - 5, 10 ** 30, 3]
    assert texts(big, str) == list(map(str, big))


def test_values_from_numpy_and_empty_columns() -> None:
    arr = np.random.default_rng(5).normal(size=4_000)
    col = arr.tolist()
    assert texts(col, repr) == list(map(repr, col))
    ints = np.arange(-2_000, 2_000).tolist()
    assert texts(ints, str) == list(map(str, ints))
    assert column_texts([], repr) == []


def test_an_orjson_that_writes_otherwise_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # an orjson that wrote 1e+16 as 1e16 (as some releases did) fails the check: every
    # column is then written value by value
    real = numtext.orjson.dumps

    def other(obj: Any) -> bytes:
        return real(obj).replace(b"e+", b"e")

    monkeypatch.setattr(numtext.orjson, "dumps", other)
    monkeypatch.setattr(numtext, "_usable", [])
    col = [1e16, 2.5, 1e20]
    assert column_texts(col, repr) == ["1e+16", "2.5", "1e+20"]
    assert numtext._usable == [False]
