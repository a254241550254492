"""Rows against columns by call size: where the column script starts to pay.

    python -m benchmarks.colsize                    # a private redis-server
    python -m benchmarks.colsize --url redis://127.0.0.1:6379/15 --flush

Writes the same AgentFarm-shaped actions (``benchmarks.bench.make_actions``) with
``add_many`` in calls of N actions, once with ``write_columns=False`` (the write
script) and once with ``write_columns=True`` (the column script, the threshold
``colwrite.MIN_RECORDS`` lowered to 1 so that every size goes as columns), alternated,
into a flushed database each time. Prints, per size, the best of the rounds of wall
µs/action, the client's CPU µs/action (``time.process_time``; ``spin_us=0``, so
waiting costs none) and the server's (``INFO cpu`` delta). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import redis

import agentmem
import agentmem.plans.colwrite as colwrite
from agentmem.model.records import Action
from benchmarks.bench import make_actions
from benchmarks.servers import add_server_args, target_server


def server_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run(url: str, args: argparse.Namespace) -> None:
    acts = [Action(**d) for d in make_actions(100, args.steps, 7)]
    admin = redis.Redis.from_url(url)
    colwrite.MIN_RECORDS = 1  # every size as columns when asked
    print(f"{len(acts):,} actions; best of {args.rounds} rounds; wall / client CPU / "
          "server CPU, µs per action")
    print("| actions per call | rows | columns |")
    print("|--:|--:|--:|")
    for size in args.sizes:
        best: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for cols in (False, True):
                mem = agentmem.connect(url, write_columns=cols, spin_us=0)
                admin.flushdb()
                mem.actions.add_many(acts[:40])  # scripts loaded, grid cell recorded
                admin.flushdb()
                s0, c0, t0 = server_cpu(admin), time.process_time(), time.perf_counter()
                for i in range(0, len(acts), size):
                    mem.actions.add_many(acts[i:i + size])
                t1, c1, s1 = time.perf_counter(), time.process_time(), server_cpu(admin)
                n = len(acts)
                best[cols].append(((t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6,
                                   (s1 - s0) / n * 1e6))
                mem.close()

        def cell(xs: list[tuple[float, float, float]]) -> str:
            return " / ".join(f"{min(x[j] for x in xs):.1f}" for j in range(3))
        print(f"| {size} | {cell(best[False])} | {cell(best[True])} |")
    admin.flushdb()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_args(ap)
    ap.add_argument("--steps", type=int, default=40, help="of 100 agents each")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 16, 24, 32, 64, 100])
    args = ap.parse_args(argv)
    with target_server(ap, args) as (url, _):
        run(url, args)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
