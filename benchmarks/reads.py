"""Bounded reads (issue 19, item 7): every action query with a limit, at growing
numbers of actions of one agent, in milliseconds per query (median of ``--repeat``),
and the ratio of the largest size to the smallest (target: at most 2x).

    python -m benchmarks.reads                       # 10k, 100k, 1M actions
    python -m benchmarks.reads --sizes 10000 100000 --repeat 9
    python -m benchmarks.reads --layout 4 --grid-cell 0.25   # sorted type/target indices

``--layout`` chooses the key layout the store writes (4: the ``types`` and ``targets``
indices as sorted sets by step, which a query of one type or target reads from its
top); ``--grid-cell`` the radius-search grid's cell side (the default 1.0 cell holds
about 100 actions at 1M in this square; ``near`` reads whole cells).

Each size is written to its own private server (``add_many`` in calls of 50,000,
``ttl=None``): one agent ``a1`` of simulation ``s1``, one action per step. Types:
``rare`` for the oldest 1 in 1,000, then ``t0``..``t8`` in turn; targets: ``b0``..``b9``
in turn (``z`` for the oldest 1 in 1,000); rewards uniform in [-1, 1]; positions
uniform in a 100 x 100 square (the default 1.0 grid cell). Every query asks for 10
records (a page: 10 records); the first call of each is not timed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import agentmem
from agentmem import Action
from agentmem.servers.local import LocalServer

LIMIT = 10


def make(size: int, seed: int = 3) -> list[Action]:
    """The actions of one agent: see the module's docstring."""
    rnd = random.Random(seed)
    rare = max(1, size // 1000)
    out = []
    for i in range(size):
        kind = "rare" if i < rare else f"t{i % 9}"
        target = "z" if i < rare else f"b{i % 10}"
        out.append(Action(agent_id="a1", simulation_id="s1", step_number=i, action_type=kind,
                          action_target_id=target, reward=rnd.uniform(-1, 1),
                          position=(rnd.uniform(0, 100), rnd.uniform(0, 100))))
    return out


def queries(mem: Any, size: int) -> dict[str, Callable[[], Any]]:
    """Every query of the action repository that takes a limit, asked for ``LIMIT``."""
    a = mem.actions
    mid = size // 2
    return {
        "recent(n)": lambda: a.recent("a1", LIMIT),
        "timeline(newest_first)": lambda: a.timeline("a1", newest_first=True, limit=LIMIT),
        "timeline(oldest first)": lambda: a.timeline("a1", limit=LIMIT),
        "timeline(start=mid)": lambda: a.timeline("a1", start=mid, limit=LIMIT),
        "by_type(t0)": lambda: a.by_type("a1", "t0", limit=LIMIT),
        "by_type(rare, oldest)": lambda: a.by_type("a1", "rare", limit=LIMIT),
        "by_target(b0)": lambda: a.by_target("a1", "b0", limit=LIMIT),
        "by_target(z, oldest)": lambda: a.by_target("a1", "z", limit=LIMIT),
        "high_reward(0.5)": lambda: a.high_reward("a1", 0.5, limit=LIMIT),
        "successful_interactions(b0)": lambda: a.successful_interactions("a1", "b0", LIMIT),
        "history(newest_first)": lambda: a.history("a1", newest_first=True, limit=LIMIT),
        "at_step(mid)": lambda: a.at_step("s1", mid, limit=LIMIT),
        "simulation_actions(0, 9)": lambda: a.simulation_actions("s1", 0, LIMIT - 1),
        "simulation_actions(-10, -1)": lambda: a.simulation_actions("s1", -LIMIT, -1),
        "near(r=5)": lambda: a.near("a1", 50.0, 50.0, 5.0, limit=LIMIT),
        "near_at(step=mid)": lambda: a.near_at("s1", 50.0, 50.0, 100.0, step=mid, limit=LIMIT),
        "near_at(last 10 steps)": lambda: a.near_at("s1", 50.0, 50.0, 100.0,
                                                    start=size - LIMIT, limit=LIMIT),
        "page(recent)": lambda: a.page("recent", "a1", size=LIMIT),
        "page(by_type, t0)": lambda: a.page("by_type", "a1", "t0", size=LIMIT),
        "page(by_type, rare)": lambda: a.page("by_type", "a1", "rare", size=LIMIT),
        "page(successful, b0)": lambda: a.page("successful_interactions", "a1", "b0",
                                               size=LIMIT),
        "page(high_reward)": lambda: a.page("high_reward", "a1", size=LIMIT),
        "page(at_step, mid)": lambda: a.page("at_step", "s1", mid, size=LIMIT),
        "page(simulation_actions)": lambda: a.page("simulation_actions", "s1", size=LIMIT),
        "learn_from_past_actions(t0)": lambda: a.learn_from_past_actions("a1", "t0",
                                                                          limit=LIMIT),
        "analyze_action_sequence": lambda: a.analyze_action_sequence("a1", LIMIT),
    }


def _ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def run(size: int, repeat: int, layout: int = 1, grid_cell: float = 1.0
        ) -> tuple[dict[str, float], float]:
    """Milliseconds per query at ``size`` actions, and the write time in seconds."""
    with LocalServer("redis") as srv:
        mem = agentmem.connect(srv.url, ttl=None, layout_version=layout, grid_cell=grid_cell)
        acts = make(size)
        t = time.perf_counter()
        for i in range(0, len(acts), 50_000):
            mem.actions.add_many(acts[i:i + 50_000])
        wrote = time.perf_counter() - t
        del acts
        out = {name: _ms(fn, repeat) for name, fn in queries(mem, size).items()}
        mem.close()
        return out, wrote


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--layout", type=int, default=1, choices=[1, 2, 3, 4])
    ap.add_argument("--grid-cell", type=float, default=1.0)
    args = ap.parse_args()
    print(f"# layout {args.layout}, grid cell {args.grid_cell}", flush=True)
    res: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        res[size], wrote = run(size, args.repeat, args.layout, args.grid_cell)
        print(f"# {size:,} actions written in {wrote:.1f} s", flush=True)
    lo, hi = min(args.sizes), max(args.sizes)
    head = " | ".join(f"{s:,}" for s in args.sizes)
    print(f"| query (limit {LIMIT}) | {head} | {hi:,} / {lo:,} |")
    print("|---|" + "--:|" * (len(args.sizes) + 1))
    for name in res[lo]:
        cells = " | ".join(f"{res[s][name]:.3f}" for s in args.sizes)
        print(f"| {name} | {cells} | {res[hi][name] / res[lo][name]:.2f}x |")


if __name__ == "__main__":
    main()
