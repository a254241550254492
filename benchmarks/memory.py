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
   bytes per action, beside the ``used_memory`` delta;
3. with ``--short-names``: what a compact layout would store (issue 19 item 4; no
   such layout exists): the same ``grids=False`` store, then every action hash
   rewritten in place (its TTL kept) with one- or two-letter field names, and again
   also without the two fields its key already holds (``agent_id``, ``action_id``);
   the ``used_memory`` delta per action of each, from the same empty database.
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


def _written(url: str, agents: int, per_agent: int) -> tuple[redis.Redis, agentmem.Memory,
                                                               int, int]:
    """An emptied server, the actions written by ``add_many`` of a ``grids=False`` store:
    the connection, the store, the number of actions, ``used_memory`` before them."""
    r = redis.Redis.from_url(url)
    r.flushall()
    mem = agentmem.connect(url, grids=False)
    actions = [agentmem.Action(**d) for d in make_actions(agents, per_agent, 7)]
    base = int(r.info("memory")["used_memory"])
    mem.actions.add_many(actions)
    return r, mem, len(actions), base


def families(url: str, agents: int, per_agent: int) -> tuple[float, dict[str, float]]:
    """The ``used_memory`` delta per action and ``MEMORY USAGE`` per key family per action,
    for ``add_many`` into an empty database of a ``grids=False`` store."""
    r, mem, n, base = _written(url, agents, per_agent)
    used = (int(r.info("memory")["used_memory"]) - base) / n
    sizes: collections.Counter[str] = collections.Counter()
    for key in r.scan_iter(count=1000):
        sizes[_ID.sub("*", key.decode())] += int(r.memory_usage(key, samples=0) or 0)
    mem.close()
    r.flushall()
    r.close()
    return used, {f: b / n for f, b in sizes.most_common()}


SHORT = {"action_id": "i", "agent_id": "a", "simulation_id": "s", "step_number": "n",
         "action_type": "t", "action_target_id": "g", "state_before_id": "sb",
         "state_after_id": "sa", "resources_before": "rb", "resources_after": "ra",
         "reward": "r", "details": "d", "position_x": "x", "position_y": "y",
         "embedding": "e", "module_type": "mt", "module_id": "mi", "stored_at": "w"}
"""Field names a compact layout might use (an assumption of this measurement)."""

_HASH = re.compile(r"^agent:[^:]+:action:[^:]+$")


def short_names(url: str, agents: int, per_agent: int) -> dict[str, float]:
    """The ``used_memory`` delta per action as written (``grids=False``), after renaming
    every action hash's fields (:data:`SHORT`), and after also dropping the fields its
    key holds."""
    r, mem, n, base = _written(url, agents, per_agent)
    out = {"as written": (int(r.info("memory")["used_memory"]) - base) / n}
    hashes = [k for k in r.scan_iter(match="agent:*:action:*", count=1000)
              if _HASH.match(k.decode()) and r.type(k) == b"hash"]
    assert len(hashes) == n, (len(hashes), n)
    for label, drop in (("short field names", ()), ("short names, no agent_id/action_id",
                                                    ("agent_id", "action_id"))):
        for key in hashes:
            fields = {k.decode(): v for k, v in r.hgetall(key).items()}
            gone = {SHORT[d] for d in drop}
            renamed = {SHORT.get(k, k): v for k, v in fields.items() if SHORT.get(k, k) not in gone}
            ttl = r.pttl(key)
            pipe = r.pipeline()
            pipe.delete(key)
            pipe.hset(key, mapping=renamed)
            if ttl > 0:
                pipe.pexpire(key, ttl)
            pipe.execute()
        out[label] = (int(r.info("memory")["used_memory"]) - base) / n
    mem.close()
    r.flushall()
    r.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey", "both"], default="both")
    ap.add_argument("--listpack", type=int, nargs="+", default=[128, 256],
                    help="zset-max-listpack-entries values to measure")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--per-agent", type=int, default=200)
    ap.add_argument("--families", action="store_true",
                    help="also the bytes per key family (grids=False)")
    ap.add_argument("--short-names", action="store_true",
                    help="also what one- or two-letter hash field names would store")
    args = ap.parse_args(argv)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    print("| server | zset-max-listpack-entries | STM B/action | IM B/action | IM / STM |")
    print("|---|--:|--:|--:|--:|")
    found: list[tuple[str, int, float, dict[str, float]]] = []
    shorts: list[tuple[str, int, dict[str, float]]] = []
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
                if args.short_names:
                    shorts.append((kind, limit, short_names(srv.url, args.agents,
                                                            args.per_agent)))
            print(f"| {kind} | {limit} | {stm:.0f} | {im:.0f} | {im / stm:.2f}x |", flush=True)
    for kind, limit, used, fams in found:
        print(f"\n{kind}, zset-max-listpack-entries {limit}, grids=False: "
              f"used_memory delta {used:.0f} B/action\n")
        print("| key family | B/action |\n|---|--:|")
        for fam, b in fams.items():
            print(f"| `{fam}` | {b:.1f} |")
    if shorts:
        print("\nA compact layout's hashes, measured by renaming (grids=False):\n")
        print("| server | zset-max-listpack-entries | hashes | B/action | vs as written |")
        print("|---|--:|---|--:|--:|")
        for kind, limit, got in shorts:
            for label, b in got.items():
                print(f"| {kind} | {limit} | {label} | {b:.0f} | "
                      f"{b / got['as written']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
