"""Bounded queries (issue 17, item 6): ``by_type(agent, type, limit=10)`` at growing
index sizes, against the full sort of the type's set, in the same run and server.

The baseline is the same script (``set_sorted_fetch.lua``) asked for the oldest
first, which always sorts the whole set: the algorithm every set query used before
the walk (since issue 19 that sort is one ``ZINTER`` in the server, no longer
``SMEMBERS``, ``ZMSCORE`` and a sort in Lua; ``benchmarks/reads.py`` measures every
query with a limit). Reported: milliseconds per query (median of ``--repeat``) and
the ratio. One agent, ten action types (one of them rare: 1 in 1,000, written
first, the walk's worst case).

    python -m benchmarks.bounded               # 10k, 100k, 300k actions
    python -m benchmarks.bounded --sizes 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import redis

import agentmem
from agentmem import Action
from agentmem.lua.scripts import SET_SORTED_FETCH
from agentmem.servers.local import LocalServer


def _time(fn: object, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def run(size: int, repeat: int) -> list[tuple[str, float, float]]:
    with LocalServer("redis") as srv:
        mem = agentmem.connect(srv.url, ttl=None)
        rare = size // 1000
        acts = [Action(agent_id="a1", simulation_id="s1", step_number=i, action_type="rare")
                for i in range(rare)]
        acts += [Action(agent_id="a1", simulation_id="s1", step_number=i,
                        action_type=f"t{i % 9}") for i in range(rare, size)]
        for i in range(0, len(acts), 20000):
            mem.actions.add_many(acts[i:i + 20000])
        client = redis.Redis.from_url(srv.url)
        client.script_load(SET_SORTED_FETCH.source)
        rows = []
        for kind in ("t0", "rare"):
            new = _time(lambda k=kind: mem.actions.by_type("a1", k, limit=10), repeat)  # type: ignore[misc]
            args = [f"agent:a1:action:types:{kind}", "agent:a1:action:timeline",
                    "agent:a1:action:", "", "0", 10, "", "0"]
            old = _time(lambda a=args: client.evalsha(SET_SORTED_FETCH.sha, 0, *a), repeat)  # type: ignore[misc]
            rows.append((kind, new, old))
        client.close()
        mem.close()
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'actions':>9} {'type':>5} {'set size':>9} {'walk ms':>9} {'sort ms':>9} {'ratio':>7}")
    for size in args.sizes:
        for kind, new, old in run(size, args.repeat):
            n = size // 1000 if kind == "rare" else (size - size // 1000) // 9
            print(f"{size:>9,} {kind:>5} {n:>9,} {new:>9.2f} {old:>9.2f} {new / old:>7.3f}")


if __name__ == "__main__":
    main()
