"""A column's numbers packed as MessagePack a whole column at a time
(agentmem.plans.wirepack): the very bytes ``msgpack.packb`` writes for the texts
``column_texts`` makes, for every part of a column, and the columns it leaves to the
value-by-value path."""

from __future__ import annotations

import random
import struct
from itertools import pairwise
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson
import pytest

from agentmem.plans.numtext import column_texts
from agentmem.plans.wirepack import Packed, Raw, packb, packed_texts, raw


def _floats(rnd: random.Random, n: int, ordinary: bool = True) -> list[float]:
    """Rewards, positions, amounts; or (not ``ordinary``) also any finite double, of
    which orjson writes many otherwise than ``repr``."""
    out: list[float] = []
    while len(out) < n:
        kind = rnd.randrange(5 if ordinary else 6)
        if kind == 0:
            out.append(round(rnd.uniform(-1000, 1000), rnd.randrange(0, 4)))
        elif kind == 1:
            out.append(rnd.uniform(0.1, 1) * rnd.choice([1, -1]) * 10.0 ** rnd.randrange(15))
        elif kind == 2:
            out.append(rnd.choice([0.0, -0.0, 1.0, -1.0, 0.5, 1 / 3, 0.1 + 0.2]))
        elif kind == 3:
            out.append(float(rnd.randrange(-10 ** 6, 10 ** 6)))
        elif kind == 4:
            out.append(rnd.uniform(0.0001, 1) * rnd.choice([1, -1]))
        else:
            (v,) = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))
            if v - v == 0.0:
                out.append(v)
    return out


def _ints(rnd: random.Random, n: int) -> list[int]:
    return [rnd.choice([rnd.randrange(-300, 300), rnd.randrange(-2 ** 63, 2 ** 63),
                        rnd.randrange(2 ** 64)]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(40))
def test_every_part_is_what_msgpack_writes_for_the_texts(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.choice([1, 2, 15, 16, 17, 100, 1000, 70_000])
    col: list[Any]
    col, fn = (_floats(rnd, n), repr) if seed % 2 else (_ints(rnd, n), str)
    packed = packed_texts(col, fn)
    assert packed is not None  # ordinary numbers are packed
    texts = column_texts(col, fn)
    assert [t.decode() if type(t) is bytes else t for t in texts] == list(map(fn, col))
    cuts = sorted({0, n, *(rnd.randrange(n + 1) for _ in range(8))})
    for a, b in [(0, n), *pairwise(cuts)]:
        assert packed.part(a, b) == msgpack.packb(texts[a:b], use_bin_type=False), (a, b)


@pytest.mark.parametrize("seed", range(20))
def test_any_double_is_packed_as_repr_writes_it_or_left_to_the_value_path(seed: int) -> None:
    rnd = random.Random(1000 + seed)
    col = _floats(rnd, rnd.choice([5, 50, 500]), ordinary=False)
    got = packed_texts(col, repr)
    whole = orjson.dumps(col)
    if got is None:  # only a text with a letter, or more than 64 tiny values
        assert whole.translate(None, b"0123456789.,-[]") or sum(
            1 for v in col if 0 < abs(v) < 1e-4) > 64
    else:
        assert got.part(0, len(col)) == msgpack.packb(list(map(repr, col)),
                                                      use_bin_type=False)


@pytest.mark.parametrize("col", [
    [1.0, 1e16], [float("nan")], [float("-inf")], [True, False], [1.0, None], [],
])
def test_a_column_orjson_writes_with_a_letter_is_never_packed(col: list[Any]) -> None:
    assert packed_texts(col, repr) is None


@pytest.mark.parametrize("col", [
    [1e-05, 2.0], [2.0, -1e-05], [-1e-05], [0.00001234], [5.0, 9.9e-05, 0.0001],
    [1.0, -4.7630159891731694e-05, 7.0, 7.214574181935163e-05, 3.0],
    [2.0, *[1e-05] * 64, 3.0],
])
def test_the_texts_of_tiny_values_are_written_by_repr(col: list[float]) -> None:
    got = packed_texts(col, repr)  # orjson writes 0.00001 for 1e-05
    assert got is not None
    assert got.part(0, len(col)) == msgpack.packb(list(map(repr, col)), use_bin_type=False)


@pytest.mark.parametrize("seed", range(40))
def test_tiny_values_among_texts_holding_four_zeros_are_each_written_by_repr(
        seed: int) -> None:
    # tiny values of either sign, first, last and next to each other, among texts that
    # hold "0.0000" without being tiny (10.00001, -5351620.000013216): the one pass
    # that finds them must take exactly the tiny ones
    rnd = random.Random(seed)
    near = [10.00001, -10.00001, 20.000001, -5351620.000013216, 0.0001, -0.0001, 0.0, -0.0]
    col: list[float] = []
    n_tiny = 0
    for _ in range(rnd.randrange(1, 120)):
        if n_tiny < 64 and rnd.random() < 0.3:
            col.append(rnd.uniform(1e-05, 9.99e-05) * rnd.choice([1, -1]))
            n_tiny += 1
        else:
            col.append(rnd.choice(near) if rnd.random() < 0.5 else rnd.uniform(-5, 5))
    got = packed_texts(col, repr)
    assert got is not None
    assert got.part(0, len(col)) == msgpack.packb(list(map(repr, col)), use_bin_type=False)


@pytest.mark.parametrize("seed", range(10))
def test_tiny_values_among_hundreds_of_texts_holding_four_zeros_are_found_by_their_marks(
        seed: int) -> None:
    # hundreds of "0.0000" that are not tiny values (10.00001): the tiny ones are found
    # by a search per mark, not a pass over every "0.0000"; the same texts either way
    rnd = random.Random(seed)
    col = [rnd.choice([10.00001, -20.000001, 30.00001, 100.00000000000001])
           for _ in range(400)]
    for _ in range(rnd.randrange(0, 65)):
        col.insert(rnd.randrange(len(col) + 1), rnd.uniform(1e-05, 9.99e-05) * rnd.choice([1, -1]))
    got = packed_texts(col, repr)
    assert got is not None
    assert got.part(0, len(col)) == msgpack.packb(list(map(repr, col)), use_bin_type=False)
    assert packed_texts([*col, *[1e-05] * 65], repr) is None  # more than 64: value path


def test_a_column_of_more_than_64_tiny_values_is_left_to_the_value_path() -> None:
    assert packed_texts([2.0, *[1e-05] * 65], repr) is None


@pytest.mark.parametrize("col", [[-5351620.000013216, 1.0], [10.00001, 0.0001], [-0.0, 0.0]])
def test_a_text_holding_four_zeros_after_its_point_is_packed_when_it_is_repr(
        col: list[float]) -> None:
    got = packed_texts(col, repr)
    assert got is not None
    assert got.part(0, len(col)) == msgpack.packb(list(map(repr, col)), use_bin_type=False)


def test_ints_beyond_64_bits_are_left_to_the_value_path() -> None:
    assert packed_texts([1, 10 ** 30], str) is None  # orjson refuses them
    assert packed_texts([1, -(2 ** 63) - 1], str) is None


@pytest.mark.parametrize("seed", range(30))
def test_packb_with_raw_parts_is_msgpack_of_the_same_values(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.choice([3, 16, 100, 300])
    wire: list[Any] = []
    plain: list[Any] = []
    for _ in range(rnd.randrange(0, 40)):
        kind = rnd.randrange(4)
        if kind == 0:
            col = _floats(rnd, n)
            packed = packed_texts(col, repr)
            assert isinstance(packed, Packed)
            wire.append(packed.part(0, n))
            plain.append(column_texts(col, repr))
        elif kind == 1:
            texts = [rnd.choice(["a", "bb", None, "x" * 40]) for _ in range(n)]
            wire.append(texts)
            plain.append(texts)
        else:
            v = rnd.choice([False, None, 7])
            wire.append(v)
            plain.append(v)
    head = ["plan" * rnd.randrange(3), n, rnd.choice([None, 3600]), "g",
            [f"b{i}" for i in range(n)], False]
    tail = [[["k1", "k2"], True], rnd.choice([False, ["o", 1]])]
    got = packb([*head, wire, *tail], 6)
    assert got == msgpack.packb([*head, plain, *tail], use_bin_type=False)
    # parts of the call itself packed ahead (raw), before its list or after it, go in
    # as they are too
    ahead = [raw(x) if rnd.random() < 0.5 else x for x in head]
    behind = [raw(x) if rnd.random() < 0.5 else x for x in tail]
    assert packb([*ahead, wire, *behind], 6) == got
    assert type(got) is not Raw or not any(type(x) is Raw for x in wire)
