"""Memory of the tiers: bytes per action in STM and in IM, and the 100 x 2,000 run.

    python benchmarks/tiers.py                   # Redis and Valkey, private servers
    python benchmarks/tiers.py --server redis --steps 2000

Not part of the test suite. For each server, in one run:

1. bytes per action in STM: ``used_memory`` after writing ``--agents`` x
   ``--per-agent`` actions of the main benchmark's AgentFarm-shaped generator
   (``benchmarks/bench.py``, same seed) with ``add_many`` into a flushed
   database, minus before, divided by the number of actions; measured on the
   second of two passes, so that memory a server allocates once per process is
   not counted per action;
2. bytes per action in IM: the same actions moved to IM (``Tiers.transition``),
   ``used_memory`` minus the empty database's, divided by the number of actions;
   the target is IM <= STM / 2;
3. the tiered run: ``--agents`` agents x ``--steps`` steps with
   ``TierPolicy(stm_steps=20, stm_capacity=25, im_capacity=50)``, ``maintain``
   every 10 steps, a SQLite archive: actions/s, peak ``used_memory`` (sampled
   before each maintenance) and the peak of the same run without tiers
   (everything stays in STM), for comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.servers.local import LocalServer, find_binary
from agentmem.tiers.maintenance import TierPolicy, Tiers
from benchmarks.bench import flush, make_actions

TYPES = ("move", "gather", "share", "attack")


def actions_at(agents: list[str], step: int) -> list[Action]:
    return [Action(agent_id=a, simulation_id="bench", step_number=step,
                   action_type=TYPES[(step + i) % 4], reward=((step * 7 + i) % 11) / 10,
                   action_target_id=agents[(i + 1) % len(agents)] if (step + i) % 4 >= 2
                   else None, resources_before=10.0, resources_after=10.0 + (step % 3),
                   position=(float(i), float(step % 50)), details={"energy": step % 7})
            for i, a in enumerate(agents)]


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def per_action(url: str, agents: int, per_agent: int, *, layout_version: int = 1,
               grids: bool = True) -> tuple[float, float]:
    """Bytes per action in STM and in IM, on a warmed-up server.

    The writes and transitions run twice and only the second time is measured. A
    server allocates some memory once per process, not per key: the latency
    histogram of each command name on its first use (about 50 KB each on Redis 7
    and Valkey, ``latency-tracking`` is on by default) and the script cache. On a
    fresh server the first pass would charge that (about 0.8 MB, 40 B per action
    of IM) to the actions. ``layout_version`` and ``grids``: the store's.
    """
    r = redis.Redis.from_url(url)
    mem = agentmem.connect(url, layout_version=layout_version, grids=grids)
    names = [f"agent_{i}" for i in range(agents)]
    n = agents * per_agent
    stm = im = 0.0
    for _ in range(2):
        flush(r)
        base = used(r)
        # the main benchmark's AgentFarm-shaped actions (benchmarks/bench.py, same seed)
        mem.actions.add_many([Action(**d) for d in make_actions(agents, per_agent, seed=1)])
        stm = (used(r) - base) / n
        tiers = Tiers(mem)
        for a in names:
            tiers.transition(a, [str(x.action_id) for x in mem.actions.timeline(a)])
        im = (used(r) - base) / n
    flush(r)
    mem.close()
    r.close()
    return stm, im


def tiered_run(url: str, agents: int, steps: int, *, tiered: bool) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    flush(r)
    mem = agentmem.connect(url)
    names = [f"agent_{i}" for i in range(agents)]
    with tempfile.TemporaryDirectory() as tmp, open_archive(Path(tmp) / "a.db") as archive:
        tiers = Tiers(mem, TierPolicy(stm_steps=20, stm_capacity=25, im_capacity=50),
                      archive=archive)
        peak = 0
        t0 = time.perf_counter()
        for step in range(steps):
            mem.actions.add_many(actions_at(names, step))
            if step % 10 == 9:
                peak = max(peak, used(r))
                if tiered:
                    tiers.maintain(names, now_step=step)
        elapsed = time.perf_counter() - t0
        peak = max(peak, used(r))
    flush(r)
    mem.close()
    r.close()
    return {"rate": agents * steps / elapsed, "peak_mib": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey", "both"], default="both")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--per-agent", type=int, default=200)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    for kind in kinds:
        if find_binary(kind) is None:  # type: ignore[arg-type]
            print(f"{kind}: no server binary, skipped")
            continue
        with LocalServer(kind) as srv:  # type: ignore[arg-type]
            stm, im = per_action(srv.url, args.agents, args.per_agent)
            tiered = tiered_run(srv.url, args.agents, args.steps, tiered=True)
            flat = tiered_run(srv.url, args.agents, args.steps, tiered=False)
        print(f"{kind}: STM {stm:.0f} B/action, IM {im:.0f} B/action "
              f"(IM/STM = {im / stm:.2f}, target <= 0.50)")
        print(f"{kind}: {args.agents} agents x {args.steps} steps, tiered: "
              f"{tiered['rate']:.0f} actions/s, peak used_memory {tiered['peak_mib']:.1f} MiB; "
              f"untiered: {flat['rate']:.0f} actions/s, peak {flat['peak_mib']:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
