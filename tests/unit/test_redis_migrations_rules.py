"""The parts of test_redis_migrations.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import redis
from _support import act

import agentmem
from agentmem import IMAction
from agentmem.migrations import redis as mig
from agentmem.plans import keyspace
from agentmem.tiers.maintenance import Tiers
from benchmarks.spec_reference import store_agent_action

LAYOUT_KEY = keyspace.LAYOUT_KEY
OTHER = {"unrelated:key": "x", "agentx:a1:action:timeline": "not ours", "agent:": "odd"}


def to_v2(key: str) -> str:
    for lay in (keyspace.layout(1),):
        found = lay.parse(key)
        if found:
            head, first, rest = key.split(":", 2)
            return f"{head}:{{{first}}}:{rest}"
    return key


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key but the migration's own: type and content."""
    out: dict[str, Any] = {}
    for raw in r.scan_iter(count=1000):
        key = raw.decode()
        if key.startswith("agentmem:layout"):
            continue
        t = r.type(raw).decode()
        if t == "hash":
            value: Any = r.hgetall(raw)
        elif t == "zset":
            value = r.zrange(raw, 0, -1, withscores=True)
        elif t == "set":
            value = sorted(r.smembers(raw))
        elif t == "list":
            value = r.lrange(raw, 0, -1)
        else:
            value = r.get(raw)
        out[key] = (t, value)
    return out


def ttls(r: redis.Redis) -> dict[str, int]:
    return {k.decode(): r.pttl(k) for k in r.scan_iter(count=1000)
            if not k.startswith(b"agentmem:layout")}


def populate(url: str, r: redis.Redis, agents: int = 4, steps: int = 12) -> None:
    with agentmem.connect(url) as mem:
        mem.actions.add_many([
            act(f"a{n}", s, "move" if s % 3 else "share", sim=f"s{n % 2}",
                reward=s / 10 if s % 2 else None, action_target_id="b1" if s % 4 == 0 else None,
                details={"s": s, "name": "é"} if s % 5 == 0 else None,
                position=(n + s / 4, -s) if s % 2 == 0 else None)
            for n in range(agents) for s in range(steps)])
        mem.im_actions.add(IMAction(action_id="a0-99-move", agent_id="a0", simulation_id="s0",
                                    step_number=99, action_type="move", importance=0.5))
        Tiers(mem).pin("a0", "a0-1-move")  # the pinned set; the hash loses its TTL
    spec = redis.Redis.from_url(url, decode_responses=True)
    for s in range(3):  # the specification's code: json.dumps details, its own ids
        store_agent_action(spec, "sp", "sim_spec", s, "gather", reward=0.5,
                           details={"où": [1, 2], "n": s})
    spec.close()
    for key, value in OTHER.items():
        r.set(key, value)


def test_history_is_one_chain() -> None:
    revs = mig.history()
    assert [r.revision for r in revs] == ["0001", "0002", "0003"]
    assert [r.down_revision for r in revs] == [None, "0001", "0002"]
    assert [r.layout for r in revs] == [1, 2, 2]
    assert all(r.description for r in revs)


def normalized(snap: dict[str, Any]) -> dict[str, Any]:
    """``details`` as values, not bytes (0003's downgrade writes json.dumps' form)."""
    out = {}
    for key, (t, value) in snap.items():
        if t == "hash" and b"details" in value:
            value = {**value, b"details": json.loads(value[b"details"])}
        out[key] = (t, value)
    return out


