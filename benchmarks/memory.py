"""Where the bytes of an action are, and IM against STM, by listpack limit.

    python -m benchmarks.memory                       # Redis and Valkey, private servers
    python -m benchmarks.memory --server valkey --listpack 128 256
    python -m benchmarks.memory --server both --listpack 256 --layouts

Not part of the test suite. For each server kind and each ``zset-max-listpack-entries``
value, on a private server of its own:

1. bytes per action in STM and in IM (``benchmarks.tiers.per_action``: the main
   benchmark's 100 agents x 200 actions written with ``add_many``, then moved to IM,
   twice, the second pass measured);
2. with ``--families``: the same actions written into a store with ``grids=False``,
   then ``MEMORY USAGE`` of every key, summed per key family (ids replaced by ``*``),
   bytes per action, beside the ``used_memory`` delta;
3. with ``--layouts``: STM and IM bytes per action (as in 1, ``grids=False``) for
   stores of layout 1 to 4 (layout 3 keeps the hashes' fields under one- or
   two-letter names, layout 4 also its type and target indices as sorted sets,
   ``docs/layouts.md``), and layout 3's hashes also without the two
   fields their key already holds (``agent_id``, ``action_id``: no layout drops them;
   measured by deleting them after the write), layout 4's with them dropped and the
   action key ``{agent_id}:<action_id>`` (:func:`layout4_short_key`; also with every key
   under a short name), and the floor of
   the specification's families (:func:`floor`) in the same run.
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
from agentmem.plans import keyspace
from agentmem.servers.local import LocalServer, find_binary
from benchmarks.bench import flush, make_actions
from benchmarks.tiers import per_action, used

_ID = re.compile(r"[^:{}]*\d[^:{}]*")


def _written(url: str, agents: int, per_agent: int, layout_version: int = 1
             ) -> tuple[redis.Redis, agentmem.Memory, int, int]:
    """An emptied server, the actions written by ``add_many`` of a ``grids=False`` store:
    the connection, the store, the number of actions, ``used_memory`` before them."""
    r = redis.Redis.from_url(url)
    flush(r)
    mem = agentmem.connect(url, grids=False, layout_version=layout_version)
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
    flush(r)
    r.close()
    return used, {f: b / n for f, b in sizes.most_common()}


def layouts(url: str, agents: int, per_agent: int) -> dict[str, tuple[float, float]]:
    """STM and IM bytes per action (``per_action``, ``grids=False``) for layouts 1 to 4,
    and with the grids kept (the default) for layouts 1, 3 and 4,
    and for layout 3's hashes also without the two fields their key holds (``agent_id``
    and ``action_id``, which no layout drops: measured by deleting them after the write)."""
    out = {f"layout {v}": per_action(url, agents, per_agent, layout_version=v, grids=False)
           for v in (1, 2, 3, 4)}
    out.update({f"layout {v}, grids kept": per_action(url, agents, per_agent,
                                                      layout_version=v, grids=True)
                for v in (1, 3, 4)})
    r, mem, n, base = _written(url, agents, per_agent, layout_version=3)
    short = keyspace.layout(3).action.codec
    drop = (short.wire("agent_id"), short.wire("action_id"))
    hashes = [k for k in r.scan_iter(match="agent:*:action:*", count=1000)
              if keyspace.layout(3).parse(k.decode()) is not None
              and keyspace.layout(3).parse(k.decode())[0] == "action"]  # type: ignore[index]
    assert len(hashes) == n, (len(hashes), n)
    pipe = r.pipeline(transaction=False)
    for key in hashes:
        pipe.hdel(key, *drop)
    pipe.execute()
    out["layout 3 without agent_id/action_id (not built)"] = (
        (int(r.info("memory")["used_memory"]) - base) / n, float("nan"))
    mem.close()
    flush(r)
    r.close()
    out["layout 4, action key {agent_id}:<id>, without agent_id/action_id (not built)"] = (
        layout4_short_key(url, agents, per_agent), float("nan"))
    out["layout 4, every key short (SHORT_NAMES), without agent_id/action_id (not built)"] = (
        layout4_short_key(url, agents, per_agent, every_key=True), float("nan"))
    for label, parse, ordered in (("floor of layouts 1-3's families, ids of any form",
                                   False, False),
                                  ("floor of layout 4's families, ids of any form",
                                   False, True),
                                  ("floor of layout 4's families, step and type read "
                                   "from the ids", True, True)):
        out[label + " (plain commands, not a layout)"] = (
            floor(url, agents, per_agent, parse_ids=parse, sorted_indices=ordered),
            float("nan"))
    return out


SHORT_NAMES = {
    "action": "{{{agent_id}}}:{action_id}", "timeline": "{{{agent_id}}}#t",
    "relative_index": "{{{agent_id}}}#r", "types": "{{{agent_id}}}#y:{action_type}",
    "targets": "{{{agent_id}}}#g:{action_target_id}", "rewards": "{{{agent_id}}}#w",
    "sim_actions": "{{{simulation_id}}}$a", "sim_step": "{{{simulation_id}}}${step_number}",
    "sim_steps": "{{{simulation_id}}}$s", "sim_by_type": "{{{simulation_id}}}$b",
    "im_action": "{{{agent_id}}}#i:{action_id}", "im_timeline": "{{{agent_id}}}#it"}
"""Short names for every family of layout 4 (``grids=False``) that a layout beyond 4
could use (:func:`layout4_short_key` with ``every_key``): the action hash under
``{agent_id}:<id>``, every other key of an agent under ``{agent_id}#...`` and of a
simulation under ``{simulation_id}$...``, so no action id can name another key."""


def layout4_short_key(url: str, agents: int, per_agent: int, *,
                      every_key: bool = False) -> float:
    """Bytes per action of layout 4 (``grids=False``) with each action hash renamed to
    ``{<agent_id>}:<action_id>`` and without the two fields that key holds (``agent_id``,
    ``action_id``), every other key as layout 4 has it: what the action hash alone of a
    layout beyond 4 would save (no layout does this; done by ``RENAME`` and ``HDEL`` after
    the write). ``every_key``: every other key renamed too (:data:`SHORT_NAMES`). Written
    twice, the second measured."""
    lay = keyspace.layout(4)
    drop = (lay.action.codec.wire("agent_id"), lay.action.codec.wire("action_id"))
    size = 0.0
    r = redis.Redis.from_url(url)
    mem = agentmem.connect(url, grids=False, layout_version=4)
    for _ in range(2):
        flush(r)
        base = used(r)
        # the actions of per_action's rows (the same seed)
        actions = [agentmem.Action(**d) for d in make_actions(agents, per_agent, 1)]
        n = len(actions)
        mem.actions.add_many(actions)
        pipe = r.pipeline(transaction=False)
        hashes = 0
        for key in r.scan_iter(match=None if every_key else "agent:*:action:*", count=1000):
            parsed = lay.parse(key.decode())
            if parsed is None:
                continue
            family, parts = parsed
            if family == "action":
                hashes += 1
                pipe.hdel(key, *drop)
                pipe.rename(key, f"{{{parts['agent_id']}}}:{parts['action_id']}")
            elif every_key:
                pipe.rename(key, SHORT_NAMES[family].format(**parts))
        assert hashes == n, (hashes, n)
        pipe.execute()
        size = (used(r) - base) / n
    mem.close()
    flush(r)
    r.close()
    return size


def floor(url: str, agents: int, per_agent: int, *, parse_ids: bool = True,
          sorted_indices: bool = False) -> float:
    """Bytes per action of the specification's key families at their least: what
    layout 3 stores (``grids=False``; values as it writes them, read back from its
    hashes), written by plain commands into the same families, types, members and
    scores, with a TTL on each action hash, but every name as short as it can be:

    - the action hash's key is the action id alone, and it keeps only the fields
      nothing else holds: not ``action_id`` (the key), nor ``agent_id``,
      ``step_number`` and ``action_type``, which an id of the specification's form
      ``{agent_id}-{step}-{type}`` holds (the benchmark's ids are of that form);
      the other fields under layout 3's one- or two-letter names (``parse_ids=False``:
      ``step_number`` and ``action_type`` kept and the key ``<agent_id>:<action_id>``,
      as for ids of any form, such as the ones a caller gives, which need not hold
      them and are unique only among one agent's);
    - each index under a key of two or three characters and the ids it names
      (``t`` timeline, ``r`` relative index trimmed to 20, ``y`` types, ``g`` targets,
      ``w`` rewards; the simulation's list, step sets, steps and counts by type); the
      type and target indices sets, as layouts 1-3 and the specification have them,
      or with ``sorted_indices`` sorted sets scored by step, as layout 4 has them
      (on Redis 7.0, which has no listpack encoding for sets, these take less).

    No layout can store the same data in the same families in fewer bytes on this
    server: a name shorter than these, or a value or member dropped, would leave some
    read without what it reads. Written twice, the second measured (as ``per_action``).
    """
    r = redis.Redis.from_url(url)
    flush(r)
    mem = agentmem.connect(url, grids=False, layout_version=3)
    mem.actions.add_many([agentmem.Action(**d) for d in make_actions(agents, per_agent, 1)])
    lay = keyspace.layout(3)
    wire = lay.action.codec.wire
    drop = {wire(f) for f in ("action_id", "agent_id") + (
        ("step_number", "action_type") if parse_ids else ())}
    keys = [k for k in r.scan_iter(match="agent:*:action:*", count=1000)
            if (lay.parse(k.decode()) or ("",))[0] == "action"]
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.hgetall(k)
        pipe.ttl(k)
    got = pipe.execute()
    mem.close()
    records = [(h, ttl) for h, ttl in zip(got[::2], got[1::2], strict=True)]
    n = len(records)
    f = {name: wire(name).encode() for name in (
        "action_id", "agent_id", "simulation_id", "step_number", "action_type",
        "action_target_id", "reward")}
    size = 0.0
    for _ in range(2):
        flush(r)
        base = used(r)
        pipe = r.pipeline(transaction=False)
        for h, ttl in records:
            aid, agent, sim = h[f["action_id"]], h[f["agent_id"]], h[f["simulation_id"]]
            step, kind = h[f["step_number"]], h[f["action_type"]]
            assert aid == b"%b-%b-%b" % (agent, step, kind), aid  # the spec's id form
            key = aid if parse_ids else b"%b:%b" % (agent, aid)
            pipe.hset(key, mapping={k: v for k, v in h.items() if k.decode() not in drop})
            pipe.expire(key, ttl)
            pipe.zadd(b"t" + agent, {aid: int(step)})
            pipe.zadd(b"r" + agent, {aid: int(step)})
            pipe.zremrangebyrank(b"r" + agent, 0, -21)
            at = [b"y%b:%b" % (agent, kind)]
            if f["action_target_id"] in h:
                at.append(b"g%b:%b" % (agent, h[f["action_target_id"]]))
            for index in at:
                if sorted_indices:
                    pipe.zadd(index, {aid: int(step)})
                else:
                    pipe.sadd(index, aid)
            if f["reward"] in h:
                pipe.zadd(b"w" + agent, {aid: float(h[f["reward"]])})
            pipe.rpush(b"s" + sim, aid)
            pipe.sadd(b"s%b:%b" % (sim, step), aid)
            pipe.zadd(b"s%b:" % sim, {step: int(step)})
            pipe.hincrby(b"s%b;" % sim, kind, 1)
            if len(pipe) > 5000:
                pipe.execute()
        pipe.execute()
        size = (used(r) - base) / n
    flush(r)
    r.close()
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["redis", "valkey", "both"], default="both")
    ap.add_argument("--listpack", type=int, nargs="+", default=[128, 256],
                    help="zset-max-listpack-entries values to measure")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--per-agent", type=int, default=200)
    ap.add_argument("--families", action="store_true",
                    help="also the bytes per key family (grids=False)")
    ap.add_argument("--layouts", action="store_true",
                    help="also STM and IM per action for layouts 1 to 4 (grids=False)")
    args = ap.parse_args(argv)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    print("| server | zset-max-listpack-entries | STM B/action | IM B/action | IM / STM |")
    print("|---|--:|--:|--:|--:|")
    found: list[tuple[str, int, float, dict[str, float]]] = []
    shorts: list[tuple[str, int, dict[str, tuple[float, float]]]] = []
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
                if args.layouts:
                    shorts.append((kind, limit, layouts(srv.url, args.agents,
                                                        args.per_agent)))
            print(f"| {kind} | {limit} | {stm:.0f} | {im:.0f} | {im / stm:.2f}x |", flush=True)
    for kind, limit, used, fams in found:
        print(f"\n{kind}, zset-max-listpack-entries {limit}, grids=False: "
              f"used_memory delta {used:.0f} B/action\n")
        print("| key family | B/action |\n|---|--:|")
        for fam, b in fams.items():
            print(f"| `{fam}` | {b:.1f} |")
    if shorts:
        print("\nPer layout (grids=False unless the row says so):\n")
        print("| server | zset-max-listpack-entries | layout | STM B/action | vs layout 1 "
              "| IM B/action | IM / STM |")
        print("|---|--:|---|--:|--:|--:|--:|")
        for kind, limit, got in shorts:
            one = got["layout 1"][0]
            for label, (stm, im) in got.items():
                ims = "" if im != im else f"{im:.0f} | {im / stm:.2f}x"
                print(f"| {kind} | {limit} | {label} | {stm:.0f} | {stm / one:.2f}x | "
                      f"{ims or ' | '} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
