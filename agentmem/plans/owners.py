"""Which agent a generated id of a simulation-level index belongs to, for integrity's
repairs: an id ``{agent_id}-{step}-{rest}`` may split several ways (agent ``bob`` step
3, or agent ``bob-3`` step 7, for ``bob-3-7-move``), and a repair raises the retired mark
of its owner only (``docs/keyspace.md``). A plan: no I/O here.

May import: ``agentmem.plans``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentmem.plans.keyspace import id_steps
from agentmem.plans.plan import Plan, command

__all__ = ["owners"]


def owners(ids: Sequence[tuple[str, str]], timeline: Callable[[str], str]
           ) -> Plan[dict[str, list[tuple[str, int]]]]:
    """For each ``(id, step of its key or '')``: the ``(agent, step)`` pairs it stands for
    (:func:`~agentmem.plans.keyspace.id_steps`). Where it splits several ways, only the
    agents whose timeline (``timeline(agent)``, its key) holds the id, one ``ZSCORE``
    each; all of them when none does (the owner cannot be told, so none is left out)."""
    cands = {aid: id_steps(aid, step) for aid, step in ids}
    probe = [(aid, agent) for aid, found in cands.items() if len(found) > 1
             for agent, _ in found]

    def parse(replies: list[Any]) -> dict[str, list[tuple[str, int]]]:
        held = {p for p, r in zip(probe, replies, strict=True) if r is not None}
        return {aid: [c for c in found if (aid, c[0]) in held] or found
                if len(found) > 1 else found for aid, found in cands.items()}

    return Plan(tuple(command("ZSCORE", timeline(agent), aid) for aid, agent in probe),
                parse)
