"""Batch write throughput: a 3-master Redis Cluster against one server, same run;
with ``--scale``, clusters of 1, 2 and 3 masters and the server CPU per master.

    python -m benchmarks.cluster [--kind redis|valkey] [--agents 100] [--steps 100]
                                 [--repeats 5] [--masters 3]
    python -m benchmarks.cluster --scale [--kind redis|valkey] [--repeats 5]

Both stores are private servers started here on loopback (the cluster with
:class:`agentmem.servers.local.LocalCluster`, key layout 2 on both). Each repeat
flushes both and writes the same AgentFarm-shaped actions
(:func:`benchmarks.bench.make_actions`) with one ``add_many``, alternating which
store goes first (round robin); the median of each and their ratio are printed.

``--scale`` (issue 19, item 8) starts clusters of 1, 2 and 3 masters side by side
and writes the same actions to each, in one simulation and split over 3
simulations, the order rotated every round. Per store it prints the median rate,
the rate per master, the client's CPU per action (``time.process_time``: every
thread of this process) and the server CPU per action (``INFO cpu`` of every master,
before and after each ``add_many``). A least-squares fit over every master of every
round then splits the server CPU into the agent part (per action, on the master of
the agent's slot) and the simulation part (per action, on the master of the
simulation's slot): the inputs of the paper model in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import redis
from redis.crc import key_slot

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


def _cpu(port: int) -> float:
    """CPU seconds (user + system) the server on ``port`` has used."""
    with redis.Redis(port=port) as c:
        info = c.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _master_of(slot: int, masters: int) -> int:
    """Which master (index) :class:`LocalCluster` gave ``slot`` (even ranges)."""
    return min(slot // (16384 // masters), masters - 1)


def _scaled_rows(rows: list[dict[str, Any]], sims: int) -> list[dict[str, Any]]:
    """``rows`` with the agents spread over ``sims`` simulations (``sim0``...)."""
    agents = sorted({r["agent_id"] for r in rows})
    of = {a: f"sim{i % sims}" for i, a in enumerate(agents)}
    return [{**r, "simulation_id": of[r["agent_id"]]} for r in rows]


def scale(kind: str, rows: list[dict[str, Any]], repeats: int, counts: list[int],
          sim_counts: list[int]) -> None:
    """1, 2, 3 masters (``counts``) x 1 and 3 simulations, interleaved; see the module."""
    n = len(rows)
    clusters = [LocalCluster(kind, masters=m).start() for m in counts]  # type: ignore[arg-type]
    try:
        stores = [(m, sims, c, connect_cluster(c.url))
                  for m, c in zip(counts, clusters, strict=True) for sims in sim_counts]
        data = {sims: _scaled_rows(rows, sims) for sims in sim_counts}
        for _, sims, _, mem in stores:
            _timed_write(mem, data[sims][:1000])
        res: dict[tuple[int, int], list[tuple[float, float, list[float]]]] = {}
        fit_x: list[tuple[float, float]] = []
        fit_y: list[float] = []
        for r in range(repeats):
            order = stores[r % len(stores):] + stores[:r % len(stores)]
            for m, sims, c, mem in order:
                part = data[sims]
                _flush(mem)
                actions = [Action(**d) for d in part]
                ports = c.ports[:m]
                before = [_cpu(p) for p in ports]
                cpu0, t0 = time.process_time(), time.perf_counter()
                out = mem.actions.add_many(actions)
                wall, client = time.perf_counter() - t0, time.process_time() - cpu0
                server = [_cpu(p) - b for p, b in zip(ports, before, strict=True)]
                assert len(out) == n
                res.setdefault((m, sims), []).append((wall, client, server))
                agent_n, sim_n = [0] * m, [0] * m
                for d in part:
                    agent_n[_master_of(key_slot(f"{{{d['agent_id']}}}".encode()), m)] += 1
                    sim_n[_master_of(key_slot(f"{{{d['simulation_id']}}}".encode()), m)] += 1
                for i in range(m):
                    fit_x.append((agent_n[i], sim_n[i]))
                    fit_y.append(server[i])
        print(f"{kind}: add_many of {n:,} actions ({len({d['agent_id'] for d in rows})} agents), "
              f"{repeats} rounds, stores rotated every round; medians")
        print("| masters | simulations | actions/s | per master | vs 1 master | client CPU "
              "us/action | server CPU us/action | busiest master CPU us/action |")
        print("|--:|--:|--:|--:|--:|--:|--:|--:|")
        base: dict[int, float] = {}
        for (m, sims), runs in res.items():
            rate = n / statistics.median(w for w, _, _ in runs)
            if m == counts[0]:
                base[sims] = rate
            client = statistics.median(cl for _, cl, _ in runs) / n * 1e6
            server = statistics.median(sum(sv) for _, _, sv in runs) / n * 1e6
            busiest = statistics.median(max(sv) for _, _, sv in runs) / n * 1e6
            print(f"| {m} | {sims} | {rate:,.0f} | {rate / m:,.0f} | "
                  f"{rate / base.get(sims, rate):.2f}x | {client:.1f} | {server:.1f} | "
                  f"{busiest:.1f} |")
        coef = np.linalg.lstsq(np.array(fit_x), np.array(fit_y), rcond=None)[0] * 1e6
        print(f"server CPU split (least squares over {len(fit_y)} master-rounds): agent part "
              f"{coef[0]:.1f} us/action, simulation part {coef[1]:.1f} us/action")
        for _, _, _, mem in stores:
            mem.close()
    finally:
        for c in clusters:
            c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("redis", "valkey"), default="redis")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--masters", type=int, default=3)
    ap.add_argument("--scale", action="store_true",
                    help="clusters of 1, 2 and 3 masters, 1 and 3 simulations, CPU per master")
    args = ap.parse_args()
    rows = make_actions(args.agents, args.steps, seed=7)
    if args.scale:
        scale(args.kind, rows, args.repeats, [1, 2, 3], [1, 3])
        return
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
