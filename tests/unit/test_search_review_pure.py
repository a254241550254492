"""Pure parts of the search review's fixes: numbers and tags in queries, sort keys, the
KNN reply's NaN distance, query vectors, equal scores for equal rows, and the radius
check (no server)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from agentmem import Q
from agentmem.errors import InvalidInput
from agentmem.model.records import Action
from agentmem.plans.ftindex import action_index, knn_results, query_vector, vector_index
from agentmem.plans.ftquery import sort_key
from agentmem.plans.grid import check_query
from agentmem.plans.keyspace import layout
from agentmem.search.vectors import as_query, best, exact_scores, normalised, unit_query


class Crafted(float):
    def __repr__(self) -> str:
        return "1] | @agent_id:{x} @reward:[-inf"

    __str__ = __repr__


class CraftedInt(int):
    def __repr__(self) -> str:
        return "1] | @agent_id:{x}"

    __str__ = __repr__


def test_numbers_are_formatted_as_plain_int_and_float() -> None:
    assert (Q.reward >= np.float64(2.0)).render() == "@reward:[2.0 +inf]"
    assert (Q.reward < np.float32(0.5)).render() == "@reward:[-inf (0.5]"
    assert (Q.reward == np.int64(3)).render() == "@reward:[3 3]"
    assert (Q.reward == Crafted(1.5)).render() == "@reward:[1.5 1.5]"
    assert (Q.reward == CraftedInt(7)).render() == "@reward:[7 7]"
    assert (Q.reward <= Fraction(1, 4)).render() == "@reward:[-inf 0.25]"
    assert (Q.reward > np.float64("inf")).render() == "@reward:[(+inf +inf]"
    for bad in (True, np.bool_(False), np.float64("nan"), "1", Fraction(10**400, 1) / 3):
        with pytest.raises(InvalidInput):
            Q.reward == bad  # noqa: B015


def test_sort_key_takes_one_sign() -> None:
    assert sort_key("-reward") == sort_key(Q.reward.desc)
    assert sort_key("+reward") == sort_key("reward") == sort_key(Q.reward.asc)
    for bad in ("--reward", "+-reward", "-+reward", "++reward", "-", "+", ""):
        with pytest.raises(InvalidInput):
            sort_key(bad)


def test_tags_with_outer_spaces_are_refused() -> None:
    assert (Q.module_type == "a  b").render() == r"@module_type:{a\ \ b}"
    for bad in (" a", "a ", " ", "  a  "):
        with pytest.raises(InvalidInput, match="leading or trailing spaces"):
            Q.module_type == bad  # noqa: B015


def test_text_is_not_stemmed() -> None:
    for index in (action_index(layout(1)), vector_index(layout(3), 4)):
        schema = list(index.schema)
        at = schema.index("details")
        assert schema[at + 1:at + 3] == ["TEXT", "NOSTEM"]


def test_nan_distance_scores_zero() -> None:
    def doc(i: int, dist: bytes) -> list[bytes]:
        return [b"agent_id", b"a", b"simulation_id", b"s", b"step_number", str(i).encode(),
                b"action_type", b"t", b"action_id", f"a-{i}-t".encode(), b"__dist", dist]

    reply = [3, b"k1", doc(1, b"-nan"), b"k2", doc(2, b"1.5"), b"k3", doc(3, b"0.5")]

    def decode(fields: dict[bytes, bytes]) -> Action:
        return Action(agent_id="a", simulation_id="s",
                      step_number=int(fields[b"step_number"]), action_type="t",
                      action_id=fields[b"action_id"].decode())

    got = knn_results(reply, decode)  # type: ignore[arg-type]
    assert [(s.action.action_id, s.score) for s in got] == [
        ("a-3-t", 0.5), ("a-1-t", 0.0), ("a-2-t", -0.5)]


@pytest.mark.parametrize("check", [query_vector, as_query])
def test_query_vectors_are_real_numbers(check: object) -> None:
    assert callable(check)
    for bad in (np.array([1j, 1.0]), ["1", "2"], [True, False], [b"1"], [None, 1.0]):
        with pytest.raises(InvalidInput):
            check(bad)
    assert check(np.array([1, 2], dtype=np.int64)).dtype == np.float32


@pytest.mark.parametrize("dim", [2, 3, 5, 6, 7, 16, 17, 64, 129])
def test_equal_rows_score_equally_wherever_they_are(dim: int) -> None:
    rng = np.random.default_rng(dim)
    m = rng.normal(size=(101, dim)).astype(np.float32)
    m[::7] = m[3]
    mat = normalised(m)
    qn = unit_query(rng.normal(size=dim).astype(np.float32))
    scores = exact_scores(mat, qn)
    assert len(set(scores[::7].tolist())) == 1
    assert np.array_equal(scores[5:9], exact_scores(mat[5:9], qn))
    rows, top = best(mat, qn, 101)
    assert np.array_equal(top, np.sort(scores)[::-1])
    for k in (1, 3, 15, 16, 40):
        rows, top = best(mat, qn, k)
        assert np.array_equal(rows, best(mat, qn, 101)[0][:k])


def test_radius_query_overflow_is_invalid_input() -> None:
    for args in ((10**400, 0, 1), (0, -10**400, 1), (0, 0, 10**400)):
        with pytest.raises(InvalidInput, match="finite number"):
            check_query(*args)
    assert check_query(2**60, 0, 1) == (float(2**60), 0.0, 1.0)


def test_radius_query_beyond_squares_that_overflow_is_invalid_input() -> None:
    """Review 104: a radius near 1e308 squared to infinity in near.lua, and the results
    came by id, not nearest first. A point may be any finite float (a far stored
    position is found from a point beside it)."""
    for radius in (1e151, 1e200, 1.7e308):
        with pytest.raises(InvalidInput, match="radius must be at most 1e\\+150"):
            check_query(0, 0, radius)
    assert check_query(-1.7e308, 1.7e308, 1e150) == (-1.7e308, 1.7e308, 1e150)
