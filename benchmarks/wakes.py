"""Reading a large write's replies: the client's CPU and the times it slept, with the
kernel told how many bytes are still due (``agentmem.backends.wakes``): as the write's
calls state them, at 3 bytes per reply (the shortest RESP allows), and without marks.

    python -m benchmarks.wakes                      # a private redis-server
    python -m benchmarks.wakes --url redis://127.0.0.1:6379/15 --flush --repeat 9

Not part of the test suite. Each round builds one ``add_columns`` write of
``--agents`` x ``--steps`` actions, sends it with ``RedisRunner.start`` (all its calls
written; the server runs them one after another) and then reads its replies with
``Pending.result()``: the reader sleeps until replies come, and on a VM each wake costs
tens of µs of CPU. Rounds alternate between the three ways, each into a flushed
database; reported are the medians of the read's client CPU (µs per action, this
thread's ``time.thread_time()``) and of its sleeps (``voluntary_ctxt_switches`` of
``/proc/thread-self/status``, Linux only).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import time

import redis

import agentmem
from agentmem.backends import wakes
from benchmarks.bench import make_actions
from benchmarks.ingest import to_columns
from benchmarks.servers import target_server


def _sleeps() -> int:
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def run(url: str, label: str, args: argparse.Namespace) -> int:
    mem = agentmem.connect(url, spin_us=0)
    admin = redis.Redis.from_url(url)
    repo, ops = mem.actions, type(mem.actions)
    lowat = wakes._LOWAT
    n = args.agents * args.steps
    ways = {"stated": "marks of the lengths the calls state",
            "least": "marks of 3 bytes per reply",
            "none": "without marks (a wake per reply)"}
    cpu: dict[str, list[float]] = {w: [] for w in ways}
    slept: dict[str, list[int]] = {w: [] for w in ways}
    admin.flushdb()
    repo.add_rows(make_actions(2, 1, args.seed))  # scripts loaded: no first-use cost
    for rnd in range(len(ways) * args.repeat):
        way = list(ways)[rnd % len(ways)]
        wakes._LOWAT = None if way == "none" else lowat
        columns = to_columns(make_actions(args.agents, args.steps, args.seed + 1 + rnd))
        admin.flushdb()
        admin.set("agentmem:grid_cell", "1.0")
        gc.collect()
        plan = ops.add_columns.build(repo, columns)
        if way == "least":
            plan = dataclasses.replace(plan, calls=[
                dataclasses.replace(c, least_reply=wakes.LEAST_REPLY) for c in plan.calls])
        pending = mem.runner.start(plan)
        s0, c0 = _sleeps(), time.thread_time()
        pending.result()
        cpu[way].append((time.thread_time() - c0) / n * 1e6)
        slept[way].append(_sleeps() - s0)
    wakes._LOWAT = lowat
    print(f"{n:,} actions in one add_columns write, {label}, median of {args.repeat} "
          f"rounds each way, alternating\n")
    print("| reading the replies | client CPU µs/action | sleeps |")
    print("|---|---:|---:|")
    for way, name in ways.items():
        print(f"| {name} | {statistics.median(cpu[way]):.3f} | "
              f"{statistics.median(slept[way]):.0f} |")
    mem.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    if not sys.platform.startswith("linux"):
        print("Linux only (counts sleeps in /proc)", file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="an existing server (its database is flushed: --flush)")
    ap.add_argument("--flush", action="store_true")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    with target_server(ap, args) as (url, label):
        return run(url, label, args)


if __name__ == "__main__":
    raise SystemExit(main())
