"""``evict_plan.lua`` called directly: which IM entries leave when an agent is over its
IM capacity, against a reference ranking computed here from every entry. Without an
importance weight the script ranks only the oldest steps (work bounded by what must
leave); with one it ranks every entry. Real Redis and Valkey; the IM hash fields
named as layouts 1 and 2 name them and as layout 3 does (``m``, ``s``)."""

from __future__ import annotations

import random

import pytest
import redis

from agentmem.lua.tiers import EVICT_PLAN

PRE, SUF, ITL, PINS = "agent:a1:im:action:", "", "agent:a1:im:action:timeline", "agent:a1:pinned"


def _reference(entries: dict[str, tuple[int, float]], pinned: set[str], cap: int,
               weight: float) -> list[str]:
    rows = sorted((step + imp * weight, imp, i) for i, (step, imp) in entries.items()
                  if i not in pinned)
    return [i for _, _, i in rows[:max(0, len(rows) - cap)]]


@pytest.mark.parametrize("fields", [("importance", "simulation_id"), ("m", "s")])
@pytest.mark.parametrize("weight", [0.0, 0.5])
@pytest.mark.parametrize("seed", range(4))
def test_the_plan_is_the_full_ranking(r: redis.Redis, weight: float, seed: int,
                                      fields: tuple[str, str]) -> None:
    rng = random.Random(seed)
    entries = {f"a1-{s}-t{k}": (s, rng.choice([0.0, 0.25, 0.5, 1.0]))
               for s in range(rng.randint(50, 400)) for k in range(rng.randint(1, 3))}
    pinned = set(rng.sample(sorted(entries), 10)) | {"not-in-im"}
    imp_field, sim_field = fields
    for i, (step, imp) in entries.items():
        r.hset(PRE + i + SUF, mapping={imp_field: imp, sim_field: "s1"})
        r.zadd(ITL, {i: step})
    r.sadd(PINS, *pinned)
    for cap in (0, 1, len(entries) // 2, len(entries) - 11, len(entries)):
        got = r.evalsha(EVICT_PLAN.sha, 0, PRE, SUF, ITL, PINS, *fields, cap, weight) \
            if r.script_exists(EVICT_PLAN.sha)[0] else \
            r.eval(EVICT_PLAN.source, 0, PRE, SUF, ITL, PINS, *fields, cap, weight)
        ids = [x.decode() for x in got[::2]]
        assert ids == _reference(entries, pinned, cap, weight), (cap, weight)
        assert all(x == b"s1" for x in got[1::2])
        first = r.evalsha(EVICT_PLAN.sha, 0, PRE, SUF, ITL, PINS, *fields, cap, weight, 3)
        assert [x.decode() for x in first[::2]] == ids[:3]  # at most 3: the lowest three
