"""The layout's floor: the writes of the specification's keys (plus agentmem's grids), in
one pipeline of one variadic command per key, no Lua, no checks (issue 19).

Every key agentmem's write script touches for a batch gets the entries the script
would give it, in the fewest commands: one ``HSET`` and one ``EXPIRE`` per action
hash, one ``ZADD``/``SADD``/``RPUSH`` per index key with all of the batch's members,
one ``HINCRBY`` per (simulation, type). What it leaves out is what makes agentmem's
write safe: the all-or-nothing checks, ids decided on the server, the relative
index's cap per agent (trimmed here with one ``ZREMRANGEBYRANK`` per agent too), the
outbox. It is the cheapest way the server can hold the same data: the rate no write
path of this layout can beat on the server's side.

Used by ``benchmarks/bench.py`` (the ``floor (pipeline)`` row).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis

from agentmem.plans.grid import code

TTL = 24 * 3600


def floor_writer(client: redis.Redis, batch_size: int = 1000, cell: float = 1.0,
                 relative: int = 20) -> Callable[[list[dict[str, Any]]], None]:
    """A function writing the benchmark's action dicts the floor's way."""

    def write(actions: list[dict[str, Any]]) -> None:
        for start in range(0, len(actions), batch_size):
            _batch(client, actions[start:start + batch_size], cell, relative)

    return write


def _batch(client: redis.Redis, batch: list[dict[str, Any]], cell: float,
           relative: int) -> None:
    zsets: dict[str, dict[str, float]] = defaultdict(dict)
    sets: dict[str, list[str]] = defaultdict(list)
    lists: dict[str, list[str]] = defaultdict(list)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    agents: set[str] = set()
    pipe = client.pipeline(transaction=False)
    for d in batch:
        ag, sim, step, typ = d["agent_id"], d["simulation_id"], d["step_number"], \
            d["action_type"]
        aid = f"{ag}-{step}-{typ}"
        key = f"agent:{ag}:action:{aid}"
        fields = {k: v for k, v in (
            ("action_id", aid), ("agent_id", ag), ("simulation_id", sim),
            ("step_number", step), ("action_type", typ),
            ("action_target_id", d.get("action_target_id")),
            ("resources_before", d.get("resources_before")),
            ("resources_after", d.get("resources_after")), ("reward", d.get("reward")),
            ("details", json.dumps(d["details"], separators=(",", ":"))
             if d.get("details") is not None else None),
        ) if v is not None}
        pos = d.get("position")
        if pos is not None:
            fields["position_x"], fields["position_y"] = pos[0], pos[1]
        pipe.hset(key, mapping=fields)
        pipe.expire(key, TTL)
        agents.add(ag)
        zsets[f"agent:{ag}:action:timeline"][aid] = step
        zsets[f"agent:{ag}:action:relative_index"][aid] = step
        sets[f"agent:{ag}:action:types:{typ}"].append(aid)
        if d.get("action_target_id"):
            sets[f"agent:{ag}:action:targets:{d['action_target_id']}"].append(aid)
        if d.get("reward") is not None:
            zsets[f"agent:{ag}:action:rewards"][aid] = d["reward"]
        lists[f"simulation:{sim}:actions"].append(aid)
        sets[f"simulation:{sim}:actions:{step}"].append(aid)
        zsets[f"simulation:{sim}:actions:steps"][str(step)] = step
        counts[(sim, typ)] += 1
        if pos is not None:
            c = code(pos[0], pos[1], cell)
            zsets[f"agent:{ag}:action:grid"][aid] = c
            zsets[f"simulation:{sim}:actions:{step}:grid"][aid] = c
    for k, members in zsets.items():
        pipe.zadd(k, members)
    for k, items in sets.items():
        pipe.sadd(k, *items)
    for k, items in lists.items():
        pipe.rpush(k, *items)
    for (sim, typ), n in counts.items():
        pipe.hincrby(f"simulation:{sim}:actions:by_type", typ, n)
    for ag in agents:
        pipe.zremrangebyrank(f"agent:{ag}:action:relative_index", 0, -relative - 1)
    pipe.execute()
