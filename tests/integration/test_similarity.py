"""Similarity search: exact against brute force, filters, errors, and the cache's
invalidation after writes, tier transitions and removals (real Redis and Valkey)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import redis

import agentmem
from agentmem.errors import InvalidInput
from agentmem.model.records import Action
from agentmem.search.similarity import (
    ServerVectorIndex,
    SimilarityIndex,
    brute_force,
    server_has_vector_index,
)
from agentmem.tiers.maintenance import Tiers

TYPES = ("move", "eat", "attack")


def act(agent: str, step: int, vec: Sequence[float] | None, kind: str = "move",
        **extra: Any) -> Action:
    emb = None if vec is None else np.asarray(vec, dtype=np.float32)
    return Action(agent_id=agent, simulation_id="s1", step_number=step, action_type=kind,
                  embedding=emb, **extra)


def naive(r: redis.Redis, agent: str, query: np.ndarray, k: int, types: Sequence[str] | None = None,
          start: int | None = None, end: int | None = None) -> list[tuple[str, float]]:
    """Every hash of the timeline read with HGETALL, scored in float64, sorted by
    (score desc, step desc, id desc)."""
    rows = []
    for member, step in r.zrange(f"agent:{agent}:action:timeline", 0, -1, withscores=True):
        h = r.hgetall(f"agent:{agent}:action:{member.decode()}")
        if not h or b"embedding" not in h:
            continue
        if types is not None and h[b"action_type"].decode() not in types:
            continue
        if (start is not None and step < start) or (end is not None and step > end):
            continue
        v = np.frombuffer(h[b"embedding"], dtype="<f4").astype(np.float64)
        if v.shape != np.shape(query):
            continue
        nv = np.linalg.norm(v)
        score = float(v @ query / (nv * np.linalg.norm(query))) if nv else 0.0
        rows.append((score, step, member))
    rows.sort(key=lambda t: (-t[0], -t[1], tuple(-b for b in t[2])))
    return [(m.decode(), s) for s, _, m in rows[:k]]


def check(found: list[Any], expected: list[tuple[str, float]], eps: float = 1e-5) -> None:
    """Same length, same scores (to float32 precision); the same ids wherever the
    scores are not within ``eps`` of another candidate's (a near tie may go either way)."""
    assert len(found) == len(expected)
    got = [(m.action.action_id, m.score) for m in found]
    for (gid, gs), (eid, es) in zip(got, expected, strict=True):
        assert gs == pytest.approx(es, abs=eps)
        if gid != eid:
            assert abs(gs - es) <= eps, (got, expected)
    assert all(a[1] >= b[1] - eps for a, b in itertools.pairwise(got))


@pytest.fixture
def index(mem: agentmem.Memory) -> Iterator[SimilarityIndex]:
    idx = SimilarityIndex(mem, batch_size=37)  # several batches per read
    yield idx
    idx.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_against_brute_force(mem: agentmem.Memory, r: redis.Redis,
                                   index: SimilarityIndex, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((40, 6)).astype(np.float32)
    actions = []
    for i in range(300):
        # many exact duplicates (ties), some scaled copies (equal cosine), some without
        if i % 7 == 0:
            vec: np.ndarray | None = None
        elif i % 3 == 0:
            vec = base[i % 40] * np.float32(1 + i % 4)
        else:
            vec = base[rng.integers(40)] if i % 2 else rng.standard_normal(6).astype(np.float32)
        actions.append(act("a1", int(rng.integers(0, 120)), vec, TYPES[i % 3]))
    actions.append(act("a1", 5, [0.0] * 6, "eat"))  # a zero vector scores 0
    mem.actions.add_many(actions)
    mem.actions.add(act("a2", 1, [1.0] * 6))  # another agent is never a candidate
    for _ in range(5):
        q = rng.standard_normal(6)
        for k in (1, 10, 50, 400):
            check(index.search("a1", q, k), naive(r, "a1", q, k))
        check(index.search("a1", q, 7, action_type="eat"), naive(r, "a1", q, 7, ["eat"]))
        check(index.search("a1", q, 7, action_type=["eat", "attack"], start=30, end=80),
              naive(r, "a1", q, 7, ["eat", "attack"], 30, 80))
        check(index.search("a1", q, 5, start=100), naive(r, "a1", q, 5, None, 100))
        check(brute_force(mem, "a1", q, 10), naive(r, "a1", q, 10))
    assert index.stats.loads == 1


def test_exact_ties_go_to_the_newest(mem: agentmem.Memory, index: SimilarityIndex) -> None:
    mem.actions.add_many([act("a1", s, [1.0, 0.0], "move") for s in (3, 1, 2)]
                         + [act("a1", 2, [2.0, 0.0], "move")]  # a1-2-move.1, same cosine
                         + [act("a1", 9, [0.0, 1.0], "eat")])
    found = index.search("a1", [3.0, 0.0], 3)
    assert [m.action.action_id for m in found] == ["a1-3-move", "a1-2-move.1", "a1-2-move"]
    assert [m.score for m in found] == pytest.approx([1.0, 1.0, 1.0])
    assert index.search("a1", [3.0, 0.0], 3, action_type="attack") == []
    assert index.search("a1", [3.0, 0.0], 0) == []


def test_empty_agent_and_no_embeddings(mem: agentmem.Memory, index: SimilarityIndex) -> None:
    assert index.search("nobody", [1.0, 2.0]) == []
    mem.actions.add(act("a1", 1, None))
    assert index.search("a1", [1.0, 2.0]) == []


def test_bad_queries_and_mismatched_dimensions(mem: agentmem.Memory,
                                               index: SimilarityIndex) -> None:
    mem.actions.add(act("a1", 1, [1.0, 2.0, 3.0]))
    with pytest.raises(InvalidInput, match="query has 2 dimensions; the agent's embeddings have 3"):
        index.search("a1", [1.0, 2.0])
    for bad in ([0.0, 0.0, 0.0], [np.nan, 1.0, 1.0], [[1.0, 2.0, 3.0]], []):
        with pytest.raises(InvalidInput):
            index.search("a1", bad)
    with pytest.raises(InvalidInput):
        index.search("a1", [1.0, 2.0, 3.0], k=-1)
    mem.actions.add(act("a1", 2, [1.0, 2.0]))  # a store without embedding_dim may mix
    with pytest.raises(InvalidInput, match=r"different lengths .*2: 1 actions, 3: 1 actions"):
        index.search("a1", [1.0, 2.0, 3.0])


def test_cache_follows_add_and_add_many(mem: agentmem.Memory, r: redis.Redis,
                                        index: SimilarityIndex) -> None:
    rng = np.random.default_rng(7)
    mem.actions.add_many([act("a1", i, rng.standard_normal(4)) for i in range(50)])
    q = rng.standard_normal(4)
    check(index.search("a1", q, 5), naive(r, "a1", q, 5))
    mem.actions.add(act("a1", 0, q * 3, "eat"))  # an old step: not after the cached ones
    found = index.search("a1", q, 5)
    assert found[0].action.action_id == "a1-0-eat"
    check(found, naive(r, "a1", q, 5))
    mem.actions.add_many([act("a1", 60 + i, -q, "attack") for i in range(3)]
                         + [act("a1", 70, q, "attack")])
    check(index.search("a1", q, 5), naive(r, "a1", q, 5))
    check(index.search("a1", -q, 5), naive(r, "a1", -q, 5))
    assert index.stats.loads == 1  # applied as changes, never read in full again
    assert index.stats.vectors_read == 55


def test_cache_follows_tier_transition(mem: agentmem.Memory, r: redis.Redis,
                                       index: SimilarityIndex) -> None:
    rng = np.random.default_rng(8)
    mem.actions.add_many([act("a1", i, rng.standard_normal(4)) for i in range(30)])
    q = rng.standard_normal(4)
    top = [m.action.action_id for m in index.search("a1", q, 5)]
    assert Tiers(mem).transition("a1", top[:3]) == top[:3]
    found = index.search("a1", q, 5)
    assert not {m.action.action_id for m in found} & set(top[:3])
    check(found, naive(r, "a1", q, 5))
    assert index.stats.loads == 1


def test_cache_follows_one_add_and_one_removal(mem: agentmem.Memory, r: redis.Redis,
                                               index: SimilarityIndex) -> None:
    """The count stays the same; the cache still sees both changes."""
    rng = np.random.default_rng(9)
    mem.actions.add_many([act("a1", i, rng.standard_normal(4)) for i in range(20)])
    q = rng.standard_normal(4)
    best = index.search("a1", q, 1)[0].action.action_id
    n = r.zcard("agent:a1:action:timeline")
    Tiers(mem).transition("a1", [best])
    mem.actions.add(act("a1", 5, -q, "eat"))
    assert r.zcard("agent:a1:action:timeline") == n
    check(index.search("a1", q, 20), naive(r, "a1", q, 20))
    assert index.search("a1", -q, 1)[0].action.action_id == "a1-5-eat"


def test_cache_follows_expiry_deletion_and_flush(mem: agentmem.Memory, r: redis.Redis,
                                                 index: SimilarityIndex) -> None:
    mem.actions.add_many([act("a1", i, [1.0, float(i)]) for i in range(10)])
    q = np.array([0.0, 1.0])
    assert index.search("a1", q, 1)[0].action.action_id == "a1-9-move"
    r.delete("agent:a1:action:a1-9-move")  # e.g. the TTL fired; the timeline keeps the id
    assert index.search("a1", q, 1)[0].action.action_id == "a1-8-move"
    r.pexpire("agent:a1:action:a1-8-move", 1)
    import time
    time.sleep(0.01)
    assert index.search("a1", q, 1)[0].action.action_id == "a1-7-move"
    r.flushdb()
    assert index.search("a1", q, 1) == []


def test_cache_survives_a_lost_connection(mem: agentmem.Memory, r: redis.Redis,
                                          index: SimilarityIndex) -> None:
    mem.actions.add(act("a1", 1, [1.0, 0.0]))
    assert len(index.search("a1", [1.0, 0.0])) == 1
    r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    mem.actions.add(act("a1", 2, [1.0, 0.0]))
    assert [m.action.action_id for m in index.search("a1", [1.0, 0.0])] == [
        "a1-2-move", "a1-1-move"]
    assert index.stats.loads == 2


def test_agents_are_cached_apart_and_bounded(mem: agentmem.Memory) -> None:
    with SimilarityIndex(mem, max_agents=2) as idx:
        for a in ("a1", "a2", "a3"):
            mem.actions.add(act(a, 1, [1.0, 0.0]))
            assert idx.search(a, [1.0, 0.0])[0].action.agent_id == a
        assert idx.cached_agents() == ["a2", "a3"]
        mem.actions.add(act("a2", 2, [1.0, 0.0]))
        assert idx.search("a2", [1.0, 0.0], 5)[0].action.action_id == "a2-2-move"


def test_layout_2(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url, layout_version=2) as m2, SimilarityIndex(m2) as idx:
        m2.actions.add_many([act("a1", i, [1.0, float(i)]) for i in range(5)])
        assert idx.search("a1", [0.0, 1.0], 1)[0].action.action_id == "a1-4-move"
        m2.actions.add(act("a1", 9, [0.0, 1.0]))
        assert idx.search("a1", [0.0, 1.0], 1)[0].action.action_id == "a1-9-move"
        assert idx.stats.loads == 1


def test_layout_3(server: Any, r: redis.Redis) -> None:
    """Layout 3 keeps the type and the embedding under short hash fields: the cache
    reads them there and ranks as on layout 2."""
    rng = np.random.default_rng(9)
    actions = [act("a1", i, None if i % 5 == 0 else rng.standard_normal(4), TYPES[i % 3])
               for i in range(60)]
    q = rng.standard_normal(4)
    found = {}
    for version in (2, 3):
        r.flushdb()
        with agentmem.connect(server.url, layout_version=version) as m, \
                SimilarityIndex(m, batch_size=7) as idx:
            m.actions.add_many(actions)
            found[version] = [
                [(x.action.action_id, round(x.score, 6)) for x in hits] for hits in (
                    idx.search("a1", q, 10), idx.search("a1", q, 5, action_type="eat"),
                    idx.search("a1", q, 4, action_type=["eat", "attack"], start=20, end=40),
                    brute_force(m, "a1", q, 10))]
            m.actions.add(act("a1", 99, q * 2, "eat"))  # the cache follows the write
            found[version].append([x.action.action_id for x in idx.search("a1", q, 1)])
            assert idx.stats.loads == 1
    assert found[3] == found[2]
    assert found[3][0] == found[3][3]
    assert len(found[3][1]) == 5
    assert found[3][4] == ["a1-99-eat"]


def test_server_vector_index_on_layout_3(search_server: Any, sr: redis.Redis) -> None:
    """The server's KNN index on layout 3 (``e AS embedding``): the same matches as the
    client-side search."""
    rng = np.random.default_rng(12)
    with agentmem.connect(search_server.url, layout_version=3) as m3:
        m3.actions.add_many([act("a1", i, rng.standard_normal(6), TYPES[i % 3])
                             for i in range(120)])
        m3.actions.add(act("a1", 500, None))  # no embedding: not a candidate
        ft = ServerVectorIndex(m3)
        ft.ensure(6)
        with SimilarityIndex(m3) as local:
            for _ in range(3):
                q = rng.standard_normal(6).astype(np.float32)
                for args in ((10, ["eat"], 20, 90), (7, None, None, None)):
                    got = ft.search("a1", q, *args)
                    want = local.search("a1", q, args[0], action_type=args[1],
                                        start=args[2], end=args[3])
                    assert [m.action for m in got] == [m.action for m in want]
                    assert [m.score for m in got] == pytest.approx([m.score for m in want],
                                                                   abs=1e-4)


def test_server_vector_index(smem: agentmem.Memory, sr: redis.Redis) -> None:
    """Server-side KNN (Valkey 9 with the RediSearch module) against the brute force."""
    assert server_has_vector_index(smem)
    rng = np.random.default_rng(11)
    smem.actions.add_many([act("a1", i, rng.standard_normal(8), TYPES[i % 3])
                           for i in range(200)])
    smem.actions.add_many([act("a2", i, rng.standard_normal(8)) for i in range(50)])
    smem.actions.add(act("a1", 500, rng.standard_normal(4)))  # another length: not a candidate
    smem.actions.add(act("a1", 501, None))
    ft = ServerVectorIndex(smem)
    ft.ensure(8)  # waits until the existing hashes are indexed
    for _ in range(3):
        q = rng.standard_normal(8)
        found = ft.search("a1", q.astype(np.float32), 10, ["eat"], 20, 150)
        check(found, naive(sr, "a1", q, 10, ["eat"], 20, 150), eps=1e-4)
        check(ft.search("a1", q.astype(np.float32), 7, None, None, None),
              naive(sr, "a1", q, 7), eps=1e-4)
    # the index follows writes and deletions with no cache to invalidate
    q = np.ones(8, dtype=np.float32)
    smem.actions.add(act("a1", 900, q * 3))
    assert ft.search("a1", q, 1, None, None, None)[0].action.action_id == "a1-900-move"
    sr.delete("agent:a1:action:a1-900-move")
    assert ft.search("a1", q, 1, None, None, None)[0].action.action_id != "a1-900-move"


def test_similarity_index_uses_the_server(smem: agentmem.Memory, sr: redis.Redis) -> None:
    rng = np.random.default_rng(5)
    smem.actions.add_many([act("a1", i, rng.standard_normal(6)) for i in range(60)])
    ServerVectorIndex(smem).ensure(6)
    with SimilarityIndex(smem, server_index=None) as idx:
        assert idx.server is not None
        q = rng.standard_normal(6)
        check(idx.search("a1", q, 5, start=10), naive(sr, "a1", q, 5, start=10), eps=1e-4)


def test_server_vector_index_unsupported(mem: agentmem.Memory) -> None:
    """Redis 7 / Valkey without the module: a clear error that says what to load."""
    assert not server_has_vector_index(mem)
    with pytest.raises(agentmem.Unsupported, match="RediSearch"):
        ServerVectorIndex(mem)
    with pytest.raises(agentmem.Unsupported, match=r"redisearch\.so"):
        mem.actions.similar([1.0, 2.0])
    with pytest.raises(agentmem.Unsupported):
        SimilarityIndex(mem, server_index=True)
