"""Bounded server work (issue 17, item 6): every command the server runs while one agent
holds N actions (1,000,000 by default), as the server's own SLOWLOG records it.

Writes N actions of one agent (ten types, rewards, targets, positions) in
``add_many`` batches, then runs each query with a limit, a check, a transition of
1% of the actions to intermediate memory and an eviction, with the SLOWLOG
threshold at ``--ms`` milliseconds. Prints, per phase, the slowest command and
every command over the threshold. One local Redis 7 (``--kind valkey``: Valkey).

    python -m benchmarks.slowlog                 # N = 1,000,000, threshold 5 ms
    python -m benchmarks.slowlog --n 200000 --ms 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import redis

import agentmem
from agentmem import Action, integrity
from agentmem.servers.local import LocalServer
from agentmem.tiers.maintenance import TierPolicy, Tiers


def _phase(client: redis.Redis, name: str, fn: Callable[[], object], ms: float) -> None:
    client.slowlog_reset()
    t = time.perf_counter()
    fn()
    wall = (time.perf_counter() - t) * 1000
    entries = client.slowlog_get(128)
    worst = max((e["duration"] for e in entries), default=0) / 1000
    over = [e for e in entries if e["duration"] / 1000 > ms]
    print(f"{name:34} wall {wall:10.1f} ms   commands over {ms:g} ms: {len(over):4}   "
          f"slowest {worst:8.2f} ms")
    for e in sorted(over, key=lambda e: -e["duration"])[:3]:
        cmd = b" ".join(e["command"][:3]) if isinstance(e["command"], list) else e["command"]
        print(f"    {e['duration'] / 1000:8.2f} ms  {str(cmd)[:90]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--ms", type=float, default=5.0)
    ap.add_argument("--kind", choices=["redis", "valkey"], default="redis")
    ap.add_argument("--skip-check", action="store_true", help="leave out the integrity check")
    args = ap.parse_args()
    with LocalServer(args.kind) as srv:
        client = redis.Redis.from_url(srv.url)
        client.config_set("slowlog-log-slower-than", int(args.ms * 1000))
        client.config_set("slowlog-max-len", 128)
        mem = agentmem.connect(srv.url, ttl=None)
        n = args.n

        def write() -> None:
            for start in range(0, n, 50_000):
                mem.actions.add_many([
                    Action(agent_id="a1", simulation_id="s1", step_number=i,
                           action_type=f"t{i % 10}", reward=(i % 7) / 7,
                           action_target_id=f"x{i % 50}", position=(i % 100, i % 77))
                    for i in range(start, min(n, start + 50_000))])

        _phase(client, f"add_many of {n:,} actions", write, args.ms)
        acts = mem.actions
        _phase(client, "by_type(limit=10)", lambda: acts.by_type("a1", "t3", limit=10), args.ms)
        _phase(client, "by_target(limit=10)", lambda: acts.by_target("a1", "x7", limit=10),
               args.ms)
        _phase(client, "successful_interactions(limit=3)",
               lambda: acts.successful_interactions("a1", "x7"), args.ms)
        _phase(client, "high_reward(limit=10)", lambda: acts.high_reward("a1", 0.5), args.ms)
        _phase(client, "recent(10)", lambda: acts.recent("a1", 10), args.ms)
        _phase(client, "timeline(limit=10)", lambda: acts.timeline("a1", limit=10), args.ms)
        _phase(client, "at_step", lambda: acts.at_step("s1", n // 2), args.ms)
        _phase(client, "near(limit=10)", lambda: acts.near("a1", 50, 30, 3, limit=10), args.ms)
        _phase(client, "simulation_actions(0, 9)",
               lambda: acts.simulation_actions("s1", 0, 9), args.ms)
        if not args.skip_check:
            _phase(client, "check (integrity)", lambda: integrity.check(mem), args.ms)
        tiers = Tiers(mem, TierPolicy(stm_steps=n - n // 100, im_capacity=n // 200))
        _phase(client, f"maintain: {n // 100:,} to IM, evict", lambda: tiers.maintain(
            now_step=n), args.ms)
        client.close()
        mem.close()


if __name__ == "__main__":
    main()
