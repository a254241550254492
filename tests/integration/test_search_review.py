"""Regressions of the search review: waiting for an index's backfill after
``query_index``/``vector_index``, stored zero vectors in the server's KNN, numbers and
tags in queries, exact words in ``details.matches``, equal scores for equal embeddings
in the similarity cache, and bad input (Valkey 9 with the RediSearch module; Redis)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import redis
from _support import act

import agentmem
from agentmem import Q
from agentmem.errors import InvalidInput
from agentmem.plans.ftindex import action_index
from agentmem.plans.keyspace import layout
from agentmem.search.similarity import SimilarityIndex, brute_force

BACKLOG = 30_000


def vec(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=np.float32)


def backlog(mem: agentmem.Memory) -> None:
    """``BACKLOG`` stored actions (one of them the ``needle``), before any index exists."""
    batch = [act(f"a{i % 50}", i, "move", embedding=vec(1.0, 0.0, float(i % 7) + 1.0))
             for i in range(BACKLOG - 1)]
    batch.append(act("a0", BACKLOG, "needle", embedding=vec(0.0, 1.0, 0.0)))
    for i in range(0, len(batch), 5000):
        mem.actions.add_many(batch[i:i + 5000])


def test_query_after_query_index_counts_every_existing_hash(
        search_server: Any, smem: agentmem.Memory) -> None:
    backlog(smem)
    fresh = agentmem.connect(search_server.url)
    try:
        fresh.actions.query_index()
        assert fresh.actions.query_count() == BACKLOG
    finally:
        fresh.close()


def test_similar_after_vector_index_finds_every_existing_hash(
        search_server: Any, smem: agentmem.Memory) -> None:
    backlog(smem)
    fresh = agentmem.connect(search_server.url)
    try:
        index = SimilarityIndex(fresh, server_index=True)
        assert index.server is not None
        index.server.ensure(3, wait=False)
        found = fresh.actions.similar(vec(0.0, 1.0, 0.0), Q.action_type == "needle", k=1)
        assert [s.action.action_type for s in found] == ["needle"]
        assert fresh.actions.query_count() == BACKLOG
    finally:
        fresh.close()


def zero_vector_store(mem: agentmem.Memory) -> None:
    mem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type="t",
                       embedding=np.zeros(3, np.float32))
    mem.actions.record(agent_id="a", simulation_id="s", step_number=2, action_type="t",
                       embedding=vec(-1, 0, 0))
    mem.actions.record(agent_id="a", simulation_id="s", step_number=3, action_type="t",
                       embedding=vec(0, 1, 0))


@pytest.mark.parametrize("filtered", [False, True])
def test_stored_zero_vectors_score_zero_in_similar(smem: agentmem.Memory,
                                                   filtered: bool) -> None:
    zero_vector_store(smem)
    where = (Q.agent_id == "a",) if filtered else ()
    expected = [("a-3-t", 0.0), ("a-1-t", 0.0), ("a-2-t", -1.0)]
    for k in (1, 2, 3, 5):
        got = smem.actions.similar(vec(1, 0, 0), *where, k=k)
        assert [(s.action.action_id, s.score) for s in got] == expected[:k]


def test_stored_zero_vectors_found_past_the_first_page(smem: agentmem.Memory) -> None:
    # 1200 newer actions scoring below 0 before the two (oldest) zero vectors
    smem.actions.add_many([act("a", i, "t", embedding=vec(-1, 0.1, 0))
                           for i in range(100, 1300)])
    for step in (0, 1):
        smem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                            action_type="z", embedding=np.zeros(3, np.float32))
    got = smem.actions.similar(vec(1, 0, 0), k=3)
    assert [s.action.action_id for s in got[:2]] == ["a-1-z", "a-0-z"]
    assert [s.score for s in got[:2]] == [0.0, 0.0]
    assert got[2].action.action_type == "t"
    assert got[2].score < 0


def test_server_index_agrees_with_the_cache_with_zero_vectors(smem: agentmem.Memory) -> None:
    rng = np.random.default_rng(3)
    for step in range(60):
        emb = (np.zeros(4, np.float32) if step % 9 == 0
               else rng.normal(size=4).astype(np.float32))
        smem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                            action_type=["move", "eat"][step % 2], embedding=emb)
    server = SimilarityIndex(smem, server_index=True)
    cache = SimilarityIndex(smem)
    try:
        for seed in range(5):
            q = np.random.default_rng(seed).normal(size=4).astype(np.float32)
            for k in (1, 5, 30, 70):
                for kw in ({}, {"action_type": "eat"}, {"start": 10, "end": 50}):
                    want = cache.search("a", q, k, **kw)  # type: ignore[arg-type]
                    got = server.search("a", q, k, **kw)  # type: ignore[arg-type]
                    assert [m.action.action_id for m in got] == [
                        m.action.action_id for m in want], (seed, k, kw)
                    assert np.allclose([m.score for m in got], [m.score for m in want],
                                       atol=1e-6)
    finally:
        cache.close()


def test_numpy_numbers_and_float_subclasses_in_conditions(smem: agentmem.Memory) -> None:
    smem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type="t",
                        reward=2.0)
    smem.actions.record(agent_id="secret", simulation_id="s", step_number=2,
                        action_type="t", reward=9.0)

    class Crafted(float):
        def __repr__(self) -> str:
            return "+inf] | @agent_id:{secret} @reward:[-inf"

        __str__ = __repr__

    def found(*where: Any) -> list[str | None]:
        return [a.action_id for a in smem.actions.query(*where)]

    assert found(Q.reward == np.float64(2.0)) == ["a-1-t"]
    assert found(Q.reward == np.int64(2)) == ["a-1-t"]
    assert found(Q.reward >= np.float32(2.5)) == ["secret-2-t"]
    assert found(Q.step_number.between(np.uint8(1), np.int32(1))) == ["a-1-t"]
    assert found(Q.agent_id == "a", Q.reward >= Crafted(100.0)) == []
    assert (Q.reward >= Crafted(100.0)).render() == "@reward:[100.0 +inf]"
    for bad in (True, np.bool_(True), "2", None, complex(1, 0)):
        with pytest.raises(InvalidInput):
            Q.reward == bad  # noqa: B015


def test_tag_values_with_outer_spaces_are_refused(smem: agentmem.Memory) -> None:
    for step, value in enumerate([" padded ", "padded", "a  b"]):
        smem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                            action_type="t", module_type=value)
    for value in (" padded ", "padded ", " padded", " "):
        with pytest.raises(InvalidInput, match="leading or trailing spaces"):
            Q.module_type == value  # noqa: B015
        with pytest.raises(InvalidInput, match="leading or trailing spaces"):
            Q.module_type.isin(["x", value])
    assert [a.module_type for a in smem.actions.query(Q.module_type == "a  b")] == ["a  b"]
    assert smem.actions.query(Q.module_type == "a b") == []


def test_details_words_are_not_stemmed(smem: agentmem.Memory) -> None:
    for step, note in enumerate(["running", "gold", "golds", "CAFÉ", "Gold Coins"]):
        smem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                            action_type="t", details={"note": note})

    def notes(words: str) -> list[str]:
        return sorted(a.details["note"] for a in smem.actions.query(Q.details.matches(words))
                      if a.details is not None)

    assert notes("run") == []
    assert notes("running") == ["running"]
    assert notes("golds") == ["golds"]
    assert notes("GOLD") == ["Gold Coins", "gold"]  # ASCII letters fold
    assert notes("CAFÉ") == ["CAFÉ"]
    assert notes("café") == []  # non-ASCII letters do not
    assert smem.actions.query_count(Q.details.matches("run")) == 0


def test_an_index_with_stemming_is_replaced(search_server: Any, sr: redis.Redis) -> None:
    index = action_index(layout(1))
    old = index.stem + "00000000"  # the definition before NOSTEM, under an older name
    stemmed = tuple(a for a in index.schema if a != "NOSTEM")
    assert len(stemmed) == len(index.schema) - 1
    sr.execute_command(*index.create_args(old)[:-len(index.schema)], *stemmed)
    mem = agentmem.connect(search_server.url)
    try:
        mem.actions.record(agent_id="a", simulation_id="s", step_number=1,
                           action_type="t", details={"note": "running"})
        assert mem.actions.query(Q.details.matches("run")) == []
        names = {n.decode() for n in sr.execute_command("FT._LIST")}
        assert index.name in names
        assert old not in names
    finally:
        mem.close()


@pytest.mark.parametrize("dim", [3, 6, 7, 16, 33])
def test_equal_embeddings_score_equally(mem: agentmem.Memory, dim: int) -> None:
    rng = np.random.default_rng(dim)
    v = rng.normal(size=dim).astype(np.float32)
    twins = (3, 17)
    for step in range(20):
        emb = v if step in twins else rng.normal(size=dim).astype(np.float32)
        mem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                           action_type="t", embedding=emb)
    q = v + np.float32(0.01) * rng.normal(size=dim).astype(np.float32)
    with SimilarityIndex(mem) as index:
        one = index.search("a", q, 1)
        two = index.search("a", q, 2)
    ref = brute_force(mem, "a", q, 2)
    assert [m.action.action_id for m in one] == ["a-17-t"]
    assert [m.action.action_id for m in two] == ["a-17-t", "a-3-t"]
    assert two[0].score == two[1].score
    assert [(m.action.action_id, m.score) for m in ref] == [
        (m.action.action_id, m.score) for m in two]


def test_similarity_against_brute_force_random(mem: agentmem.Memory) -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(size=(5, 8)).astype(np.float32)
    for step in range(300):  # many exact duplicates: ties everywhere
        mem.actions.record(agent_id="a", simulation_id="s", step_number=step,
                           action_type=random.Random(step).choice(["x", "y"]),
                           embedding=base[step % 5])
    with SimilarityIndex(mem) as index:
        for k in (1, 7, 60, 400):
            q = rng.normal(size=8).astype(np.float32)
            got = [(m.action.action_id, m.score) for m in index.search("a", q, k)]
            assert got == [(m.action.action_id, m.score) for m in brute_force(mem, "a", q, k)]


def test_search_input_checks(mem: agentmem.Memory) -> None:
    mem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type="t",
                       position=(0.0, 0.0), embedding=np.ones(3, np.float32))
    index = SimilarityIndex(mem)
    try:
        for kw in ({"start": "0"}, {"end": 0.5}, {"start": True}):
            with pytest.raises(InvalidInput, match="int step"):
                index.search("a", [1, 1, 1], 5, **kw)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput, match="int step"):
                brute_force(mem, "a", [1, 1, 1], 5, **kw)  # type: ignore[arg-type]
        for run in (lambda: index.search("a", [1, 1, 1], -1),
                    lambda: brute_force(mem, "a", [1, 1, 1], -1)):
            with pytest.raises(InvalidInput, match="k must be"):
                run()
        # the lengths are checked over every embedding, whatever the filters leave
        for run in (lambda: index.search("a", [1, 1, 1, 1], 1, action_type="other"),
                    lambda: brute_force(mem, "a", [1, 1, 1, 1], 1, action_type="other"),
                    lambda: brute_force(mem, "a", [1, 1, 1, 1], 0, start=5)):
            with pytest.raises(InvalidInput, match="dimensions"):
                run()
        for bad in (np.array([1j, 1, 1]), ["1", "1", "1"], [True, True, True]):
            with pytest.raises(InvalidInput, match="real numbers"):
                index.search("a", bad, 1)
    finally:
        index.close()
    for x, y, radius in ((10**400, 0, 1), (0, -10**400, 1), (0, 0, 10**400)):
        with pytest.raises(InvalidInput, match="finite number"):
            mem.actions.near("a", x, y, radius)


def test_similar_and_sort_input_checks(smem: agentmem.Memory) -> None:
    smem.actions.record(agent_id="a", simulation_id="s", step_number=1, action_type="t",
                        reward=1.0, embedding=np.ones(4, np.float32))
    for bad in (np.array([1j, 1, 1, 1]), ["1", "1", "1", "1"], [True] * 4):
        with pytest.raises(InvalidInput, match="real numbers"):
            smem.actions.similar(bad)
    for key in ("--reward", "+-reward", "-+reward", "++reward", "-", ""):
        with pytest.raises(InvalidInput):
            smem.actions.query(sort_by=key)
    assert [a.action_id for a in smem.actions.query(sort_by="+reward")] == ["a-1-t"]
