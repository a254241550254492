"""Where the bytes of an action are, and IM against STM, by listpack limit.

    python -m benchmarks.memory                       # Redis and Valkey, private servers
    python -m benchmarks.memory --server valkey --listpack 128 256

Not part of the test suite. For each server kind and each ``zset-max-listpack-entries``
value, on a private server of its own:

1. bytes per action in STM and in IM (``benchmarks.tiers.per_action``: the main
   benchmark's 100 agents x 200 actions written with ``add_many``, then moved to IM,
   twice, the second pass measured);
2. with ``--families``: the same actions written into a store with ``grids=False``,
   then ``MEMORY USAGE`` of every key, summed per key family (ids replaced by ``*``),
   bytes per action, beside the ``used_memory`` delta.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

import redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem.servers.local import LocalServer, find_binary
from benchmarks.bench import make_actions
from benchmarks.tiers import per_action

_ID = re.compile(r"[^:{}]*\d[^:{}]*")


def families(url: str, agents: int, per_agent: int) -> tuple[float, dict[str, float]]:
    """The ``used_memory`` delta per action and ``MEMORY USAGE`` per key family per action,
    for ``add_many`` into an empty database of a ``grids=False`` store."""
    r = redis.Redis.from_url(url)
    r.flushall()
    mem = agentmem.connect(url, grids=False)
    actions = [agentmem.Action(**d) for d in make_actions(agents, per_agent, 7)]
    base = int(r.info("memory")["used_memory"])
    mem.actions.add_many(actions)
    used = (int(r.info("memory")["used_memory"]) - base) / len(actions)
    sizes: collections.Counter[str] = collections.Counter()
    for key in r.scan_iter(count=1000):
        sizes[_ID.sub("*", key.decode())] += int(r.memory_usage(key, samples=0) or 0)
    mem.close()
    r.flushall()
    r.close()
    return used, {f: b / len(actions) for f, b in sizes.most_common()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey", "both"], default="both")
    ap.add_argument("--listpack", type=int, nargs="+", default=[128, 256],
                    help="zset-max-listpack-entries values to measure")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--per-agent", type=int, default=200)
    ap.add_argument("--families", action="store_true",
                    help="also the bytes per key family (grids=False)")
    args = ap.parse_args(argv)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    print("| server | zset-max-listpack-entries | STM B/action | IM B/action | IM / STM |")
    print("|---|--:|--:|--:|--:|")
    found: list[tuple[str, int, float, dict[str, float]]] = []
    for kind in kinds:
        if find_binary(kind) is None:  # type: ignore[arg-type]
            print(f"| {kind} | no server binary, skipped | | | |")
            continue
        for limit in args.listpack:
            with LocalServer(kind) as srv:  # type: ignore[arg-type]
                redis.Redis.from_url(srv.url).config_set("zset-max-listpack-entries", limit)
                stm, im = per_action(srv.url, args.agents, args.per_agent)
                if args.families:
                    used, fams = families(srv.url, args.agents, args.per_agent)
                    found.append((kind, limit, used, fams))
            print(f"| {kind} | {limit} | {stm:.0f} | {im:.0f} | {im / stm:.2f}x |", flush=True)
    for kind, limit, used, fams in found:
        print(f"\n{kind}, zset-max-listpack-entries {limit}, grids=False: "
              f"used_memory delta {used:.0f} B/action\n")
        print("| key family | B/action |\n|---|--:|")
        for fam, b in fams.items():
            print(f"| `{fam}` | {b:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
