"""What each durability mode costs (docs/durability.md), same process, same servers.

One local Redis 7 (or Valkey with ``--kind valkey``), one SQLite archive file per
case, N actions of 20 agents written one ``add`` at a time and in ``add_many``
batches. Reported: microseconds per action on the writer's thread (until
``close()`` returned, so the archive write is included) and the ratio to
``Memory.add`` alone (Redis, no archive). ``redis, no outbox`` is the same writer
with the outbox taken out: what the durable hand-off costs.

    python -m benchmarks.durability            # N = 5000
    python -m benchmarks.durability --n 20000 --kind valkey
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer


def _actions(n: int, sim: str) -> list[Action]:
    return [Action(agent_id=f"a{i % 20}", simulation_id=sim, step_number=i // 20,
                   action_type="move", reward=float(i % 7), details={"i": i})
            for i in range(n)]


def _per_action(fn: Callable[[], object], n: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--kind", choices=["redis", "valkey"], default="redis")
    args = ap.parse_args()
    n, b = args.n, args.batch
    rows: list[tuple[str, float, float]] = []
    with LocalServer(args.kind) as srv, tempfile.TemporaryDirectory() as tmp:
        mem = agentmem.connect(srv.url)
        case = 0

        def fresh() -> str:
            nonlocal case
            case += 1
            mem.runner.client.flushdb()  # the benchmark's own server
            return f"s{case}"

        def redis_only() -> tuple[float, float]:
            acts = _actions(n, fresh())
            one = _per_action(lambda: [mem.actions.add(a) for a in acts], n)
            acts = _actions(n, fresh())
            many = _per_action(lambda: [mem.actions.add_many(acts[i:i + b])
                                        for i in range(0, n, b)], n)
            return one, many

        def writer(mode: str | None, outbox: bool = True) -> tuple[float, float]:
            out = []
            for single in (True, False):
                acts = _actions(n, fresh())
                archive = open_archive(Path(tmp) / f"{case}.db")
                w = DualWriter(mem, archive, durability=mode)  # type: ignore[arg-type]
                if not outbox:
                    w.outbox.actions = mem.actions  # type: ignore[misc]

                def run(w: DualWriter = w, acts: list[Action] = acts,
                        single: bool = single) -> None:
                    if single:
                        for a in acts:
                            w.add(a)
                    else:
                        for i in range(0, n, b):
                            w.add_many(acts[i:i + b])
                    w.close()

                out.append(_per_action(run, n))
                assert archive.count(acts[0].simulation_id) == n
                archive.close()
            return out[0], out[1]

        base = redis_only()
        rows.append(("Memory.add (Redis only)", *base))
        for label, mode, outbox in (("redis, no outbox", "redis", False),
                                    ("buffered", "buffered", True),
                                    ("redis (default)", "redis", True),
                                    ("archived", "archived", True)):
            rows.append((label, *writer(mode, outbox)))
        mem.close()
    print(f"{args.kind}, {n:,} actions, add_many batches of {b}; us/action (ratio to "
          "Memory.add / Memory.add_many)")
    print(f"{'':26} {'add':>9} {'ratio':>7} {'add_many':>9} {'ratio':>7}")
    for label, one, many in rows:
        print(f"{label:26} {one:>9.1f} {one / base[0]:>7.2f} {many:>9.1f} "
              f"{many / base[1]:>7.2f}")


if __name__ == "__main__":
    main()
