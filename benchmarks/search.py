"""Similarity search and sequence analytics against naive baselines, in one run.

    python benchmarks/search.py                    # Redis, a private server
    python benchmarks/search.py --server valkey    # Valkey
    python benchmarks/search.py --n 100000 --dim 64 --queries 50 --json

Not part of the test suite. Loads ``--n`` actions of one agent with ``--dim``
float32 embeddings (``add_many``), then times:

  first query     ``SimilarityIndex(mem).search(agent, q, 10)`` on an empty cache:
                  the timeline's ids, every vector in batches, the matrix, top-10
  cached query    the median of ``--queries`` more searches (each: one PING to
                  validate, one matrix-vector product, the 10 actions read)
  after a write   one ``add`` then a search (the timeline's ids read again, one
                  vector fetched), median of 5
  filtered        ``action_type`` and a step range, median
  brute force     every hash read with HGETALL (pipelines of 1,000) into numpy,
                  normalised, scored, top-10 by ``argsort``: the baseline, median of 3
  full compare    the cost of the exact fallback a cache without change tracking
                  would pay: ``ZRANGE 0 -1 WITHSCORES`` of the timeline, median

and the sequence analytics over the agent's ``--n`` action types
(``agentmem.search.sequences``, numpy) against pure-Python loops (``Counter``, dicts);
then radius search against full scans (``benchmarks/radius.py`` with its
defaults, on a fresh server of the same kind; ``--no-radius`` leaves it out).
The exit code is 0 whatever the figures: this is a report.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/radius.py

import itertools

import agentmem
from agentmem.model.records import Action
from agentmem.search.sequences import (
    best_next,
    cycles,
    ngram_counts,
    read_window,
    transition_matrix,
)
from agentmem.search.similarity import SimilarityIndex
from agentmem.servers.local import LocalServer

TYPES = ["move", "gather", "attack", "share", "reproduce", "defend", "rest", "flee"]


def timed(f: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1000, out


def load(mem: agentmem.Memory, n: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    rnd = random.Random(seed)
    batch = []
    for i in range(n):
        batch.append(Action(agent_id="agent_0", simulation_id="sim", step_number=i,
                            action_type=rnd.choice(TYPES), reward=rnd.uniform(-1, 1),
                            embedding=vecs[i]))
        if len(batch) == 10_000:
            mem.actions.add_many(batch)
            batch = []
    if batch:
        mem.actions.add_many(batch)


def brute_force(r: redis.Redis, agent: str, q: np.ndarray, k: int) -> list[str]:
    ids = r.zrange(f"agent:{agent}:action:timeline", 0, -1)
    vecs, names = [], []
    for i in range(0, len(ids), 1000):
        pipe = r.pipeline(transaction=False)
        for aid in ids[i:i + 1000]:
            pipe.hgetall(b"agent:" + agent.encode() + b":action:" + aid)
        for aid, h in zip(ids[i:i + 1000], pipe.execute(), strict=True):
            if h and b"embedding" in h:
                vecs.append(np.frombuffer(h[b"embedding"], dtype="<f4"))
                names.append(aid.decode())
    m = np.stack(vecs)
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    scores = m @ (q / np.linalg.norm(q))
    return [names[i] for i in np.argsort(-scores, kind="stable")[:k]]


def py_analytics(types: list[str], rewards: list[float]) -> Any:
    ngrams = Counter(itertools.pairwise(types))
    trans: dict[str, Counter[str]] = defaultdict(Counter)
    for a, b in itertools.pairwise(types):
        trans[a][b] += 1
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for i in range(len(types) - 1):
        acc[(types[i], types[i + 1])].append(rewards[i + 1])
    means = {k: sum(v) / len(v) for k, v in acc.items()}
    lengths = {}
    for p in range(2, 9):
        i = len(types) - 1 - p
        while i >= 0 and types[i] == types[i + p]:
            i -= 1
        lengths[p] = len(types) - (i + 1)
    return ngrams, trans, means, lengths


def np_analytics(types: list[str], rewards: np.ndarray) -> Any:
    return (ngram_counts(types, 2), transition_matrix(types), best_next(types, rewards),
            cycles(types, 8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey"], default="redis")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-radius", action="store_true", help="skip the radius-search part")
    args = ap.parse_args()
    server = LocalServer(args.server).start()
    res: dict[str, Any] = {"server": args.server, "n": args.n, "dim": args.dim}
    try:
        mem = agentmem.connect(server.url)
        r = redis.Redis.from_url(server.url)
        res["load_s"] = round(timed(lambda: load(mem, args.n, args.dim, args.seed))[0] / 1000, 1)
        rng = np.random.default_rng(args.seed + 1)
        qs = rng.standard_normal((args.queries + 20, args.dim)).astype(np.float32)
        idx = SimilarityIndex(mem)
        res["first_ms"], first = timed(lambda: idx.search("agent_0", qs[0], 10))
        cached = [timed(lambda q=q: idx.search("agent_0", q, 10))[0] for q in qs[1:args.queries]]
        res["cached_median_ms"] = statistics.median(cached)
        res["cached_p90_ms"] = sorted(cached)[int(0.9 * len(cached))]
        writes = []
        for i in range(5):
            mem.actions.add(Action(agent_id="agent_0", simulation_id="sim",
                                   step_number=args.n + i, action_type="move",
                                   embedding=qs[-1 - i]))
            writes.append(timed(lambda: idx.search("agent_0", qs[2], 10))[0])
        res["after_write_median_ms"] = statistics.median(writes)
        filt = [timed(lambda q=q: idx.search("agent_0", q, 10, action_type=["move", "attack"],
                                             start=args.n // 4, end=args.n // 2))[0]
                for q in qs[1:21]]
        res["filtered_median_ms"] = statistics.median(filt)
        brute = [timed(lambda q=q: brute_force(r, "agent_0", q, 10)) for q in qs[1:4]]
        res["brute_median_ms"] = statistics.median(t for t, _ in brute)
        same = all([m.action.action_id for m in idx.search("agent_0", q, 10)] == ids
                   for q, (_, ids) in zip(qs[1:4], brute, strict=True))
        res["same_answers_as_brute_force"] = same
        res["full_compare_ms"] = statistics.median(
            timed(lambda: r.zrange("agent:agent_0:action:timeline", 0, -1, withscores=True))[0]
            for _ in range(5))
        res["speedup_cached_vs_brute"] = round(res["brute_median_ms"] / res["cached_median_ms"])
        res["first_result"] = first[0].action.action_id
        idx.close()

        # analytics over the agent's whole window
        res["read_window_ms"], w = timed(lambda: read_window(mem, "agent_0"))
        types, rewards = w.types, w.rewards
        plain = [float(x) for x in rewards]
        np_t = [timed(lambda: np_analytics(types, rewards))[0] for _ in range(5)]
        py_t = [timed(lambda: py_analytics(types, plain))[0] for _ in range(5)]
        res["analytics_numpy_ms"] = statistics.median(np_t)
        res["analytics_python_ms"] = statistics.median(py_t)
        res["analytics_window"] = len(types)
    finally:
        server.close()
    if not args.no_radius:
        import radius  # benchmarks/radius.py, beside this file

        rargs = radius.parser().parse_args(["--server", args.server, "--seed", str(args.seed)])
        res.update({f"radius_{k}": v for k, v in radius.run(rargs).items()})
    for k, v in res.items():
        if isinstance(v, float):
            res[k] = round(v, 2)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
