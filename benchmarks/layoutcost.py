"""What a layout costs per action written, and what its by-type reads cost, layouts
side by side in one run (issue 19, items 4 and 7: layout 4's sorted type and target
indices against layout 3's sets).

    python -m benchmarks.layoutcost                          # layouts 3 and 4, both servers
    python -m benchmarks.layoutcost --layouts 1 3 4 --server redis --repeat 5

Each round writes, for each layout in turn (the order reversed every other round), the
main benchmark's shape (``--agents`` x ``--steps`` actions, written step by step with
``add_many`` in the store's default calls of 100; each agent's first 1 in 100
actions of type ``rare`` aimed at ``z``, then nine types and ten targets in turn)
into a flushed private server, and measures:

- server CPU per action written (``INFO cpu``, user + sys, over the writes);
- client CPU per action written (``time.process_time``);
- bytes per action (``used_memory`` after the writes, less before);
- ``by_type(rare, limit=10)`` and ``by_type(t0, limit=10)`` of every agent, server
  CPU per query and wall time per query (one round trip each).

Medians of the rounds, and each layout's ratio to the first layout given.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import redis

import agentmem
from agentmem import Action
from agentmem.servers.local import LocalServer, find_binary
from benchmarks.bench import flush


def make(agents: int, steps: int) -> list[list[Action]]:
    """The actions of each step (see the module's docstring)."""
    rare = max(1, steps // 100)
    return [[Action(agent_id=f"a{a}", simulation_id="s1", step_number=s,
                    action_type="rare" if s < rare else f"t{s % 9}",
                    action_target_id="z" if s < rare else f"b{s % 10}",
                    reward=((a * 31 + s * 17) % 200) / 100 - 1.0,
                    position=(float((a * 7 + s) % 100), float((a * 13 + s * 3) % 100)))
             for a in range(agents)] for s in range(steps)]


def _cpu(r: redis.Redis) -> float:
    info: Any = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def one(url: str, layout: int, steps: list[list[Action]]) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    flush(r)
    mem = agentmem.connect(url, layout_version=layout, ttl=None)
    mem.actions.recent("a0", 1)  # the layout claimed, scripts loaded, before the clock
    n = sum(len(s) for s in steps)
    agents = sorted({a.agent_id for a in steps[0]})
    base = int(r.info("memory")["used_memory"])
    c0, p0 = _cpu(r), time.process_time()
    for step in steps:
        mem.actions.add_many(step)
    out = {"server us/action": (_cpu(r) - c0) / n * 1e6,
           "client us/action": (time.process_time() - p0) / n * 1e6,
           "B/action": (int(r.info("memory")["used_memory"]) - base) / n}
    for kind in ("rare", "t0"):
        c0, t0 = _cpu(r), time.perf_counter()
        for a in agents:
            mem.actions.by_type(a, kind, limit=10)
        out[f"by_type({kind}) server us"] = (_cpu(r) - c0) / len(agents) * 1e6
        out[f"by_type({kind}) wall us"] = (time.perf_counter() - t0) / len(agents) * 1e6
    mem.close()
    flush(r)
    r.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", type=int, nargs="+", default=[3, 4], choices=[1, 2, 3, 4])
    ap.add_argument("--server", choices=["redis", "valkey", "both"], default="both")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    steps = make(args.agents, args.steps)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    for kind in kinds:
        if find_binary(kind) is None:  # type: ignore[arg-type]
            print(f"# {kind}: no server binary, skipped")
            continue
        rounds: dict[int, list[dict[str, float]]] = {v: [] for v in args.layouts}
        with LocalServer(kind) as srv:  # type: ignore[arg-type]
            for i in range(args.repeat):
                order = args.layouts if i % 2 == 0 else list(reversed(args.layouts))
                for v in order:
                    rounds[v].append(one(srv.url, v, steps))
        first = args.layouts[0]
        med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for v, rs in rounds.items()}
        names = list(med[first])
        print(f"\n{kind}, {args.agents} agents x {args.steps} steps, medians of "
              f"{args.repeat} rounds; ratio to layout {first} in brackets\n")
        print("| layout | " + " | ".join(names) + " |")
        print("|---|" + "--:|" * len(names))
        for v in args.layouts:
            cells = " | ".join(f"{med[v][k]:.1f} ({med[v][k] / med[first][k]:.2f}x)"
                               for k in names)
            print(f"| {v} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
