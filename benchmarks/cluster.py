"""Batch write throughput: a 3-master Redis Cluster against one server, same run.

    python -m benchmarks.cluster [--kind redis|valkey] [--agents 100] [--steps 100]
                                 [--repeats 5] [--masters 3]

Both stores are private servers started here on loopback (the cluster with
:class:`agentmem.servers.local.LocalCluster`, key layout 2 on both). Each repeat
flushes both and writes the same AgentFarm-shaped actions
(:func:`benchmarks.bench.make_actions`) with one ``add_many``, alternating which
store goes first (round robin); the median of each and their ratio are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import agentmem
from agentmem.backends.cluster import ClusterMemory, connect_cluster
from agentmem.model.records import Action
from agentmem.servers.local import LocalCluster, LocalServer
from benchmarks.bench import make_actions


def _flush(mem: Any) -> None:
    if isinstance(mem, ClusterMemory):
        for node in mem.runner.primaries():
            mem.runner.node_client(node).flushall()
    else:
        mem.client.flushall()


def _timed_write(mem: Any, rows: list[dict[str, Any]]) -> float:
    _flush(mem)
    actions = [Action(**d) for d in rows]
    start = time.perf_counter()
    out = mem.actions.add_many(actions)
    elapsed = time.perf_counter() - start
    assert len(out) == len(rows)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("redis", "valkey"), default="redis")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--masters", type=int, default=3)
    args = ap.parse_args()
    rows = make_actions(args.agents, args.steps, seed=7)
    n = len(rows)
    with LocalCluster(args.kind, masters=args.masters) as cluster, \
            LocalServer(args.kind) as single:
        stores: dict[str, Any] = {
            "one server": agentmem.connect(single.url, layout_version=2),
            f"cluster ({args.masters} masters)": connect_cluster(cluster.url),
        }
        for mem in stores.values():  # warm-up: scripts loaded, layout recorded
            _timed_write(mem, rows[: min(n, 1000)])
        times: dict[str, list[float]] = {name: [] for name in stores}
        names = list(stores)
        for r in range(args.repeats):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                times[name].append(_timed_write(stores[name], rows))
        print(f"{args.kind}: add_many of {n} actions ({args.agents} agents x {args.steps} "
              f"steps), {args.repeats} repeats, round robin")
        med = {}
        for name, ts in times.items():
            med[name] = statistics.median(ts)
            print(f"  {name:<22} median {med[name]:.3f} s  {n / med[name]:>10,.0f} actions/s  "
                  f"(runs: {', '.join(f'{t:.3f}' for t in ts)})")
        single_t, cluster_t = med[names[0]], med[names[1]]
        print(f"  cluster / one server throughput: {single_t / cluster_t:.2f}x")
        for mem in stores.values():
            mem.close()


if __name__ == "__main__":
    main()
