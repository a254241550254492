"""The relative index after a delete and a move to IM on a Redis Cluster (the agent-slot
scripts refill it from the timeline, which shares the agent's slot): see
tests/integration/test_relative_after_removal.py."""

from __future__ import annotations

from typing import Any, cast

import agentmem
from agentmem.backends.cluster import ClusterMemory


def test_relative_after_delete_and_move(cm: ClusterMemory) -> None:
    acts = cm.actions
    for step in range(21):
        acts.record(agent_id="a", simulation_id="s", step_number=step, action_type="move")
    assert acts.delete("a-20-move", agent_id="a")
    assert agentmem.Tiers(cast(Any, cm)).transition("a", ["a-19-move"]) == ["a-19-move"]
    acts.record(agent_id="a", simulation_id="s", step_number=0, action_type="eat")
    tl = [a.action_id for a in acts.timeline("a", newest_first=True)]
    key = acts.layout.key("relative_index", agent_id="a")
    assert [m.decode() for m in cm.client.zrevrange(key, 0, -1)] == tl[:20]
    for k in range(23):
        got = acts.relative("a", -k)
        assert (got.action_id if got else None) == (tl[k] if k < len(tl) else None), k


def test_repair_refills_the_relative_index(cm: ClusterMemory) -> None:
    from agentmem.integrity import repair

    acts = cm.actions
    for step in range(25):
        acts.record(agent_id="a", simulation_id="s", step_number=step, action_type="move")
    pre, suf = acts.layout.record_key_parts("action", agent_id="a")
    cm.client.delete(f"{pre}a-24-move{suf}")  # as its TTL would
    repair(cast(Any, cm))
    tl = [a.action_id for a in acts.timeline("a", newest_first=True)]
    key = acts.layout.key("relative_index", agent_id="a")
    assert [m.decode() for m in cm.client.zrevrange(key, 0, -1)] == tl[:20]
