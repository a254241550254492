"""Which agent a generated id of a simulation-level index belongs to, for integrity's
repairs: an id ``{agent_id}-{step}-{rest}`` may split several ways (agent ``bob`` step
3, or agent ``bob-3`` step 7, for ``bob-3-7-move``), and a repair raises the retired mark
of its owner only (``docs/keyspace.md``). Plans: no I/O here; one server's integrity
and the cluster's walk run them.

May import: ``agentmem.plans``, ``agentmem.lua``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Container, Sequence
from typing import Any

from agentmem.lua.dualwrite import RETIRED_SEED
from agentmem.plans.keyspace import id_steps
from agentmem.plans.plan import FollowUp, Plan, command, script_call

__all__ = ["owners", "raise_marks"]


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


def raise_marks(sim: str, ids: Sequence[tuple[str, str]], agents: Container[str] | None,
                timeline: Callable[[str], str], retired: Callable[[str], str]
                ) -> Plan[list[tuple[str, str]]]:
    """Before a repair removes the simulation-level orphans ``ids`` (``(id, step of their
    key or '')``) of ``sim``: raise each owner's retired mark of ``sim`` to the id's step
    (``retired(agent)``: the marks' key; an agent outside ``agents``, when given, is left
    alone), so that the id is never given again. Two round trips; the result is the
    ``(agent, id)`` pairs whose mark was raised."""

    def then(found: dict[str, list[tuple[str, int]]]) -> list[tuple[str, str]]:
        per_agent: dict[str, list[Any]] = defaultdict(list)
        marked = []
        for aid, pairs in found.items():
            for agent, n in pairs:
                if agents is None or agent in agents:
                    per_agent[agent] += (sim, n)
                    marked.append((agent, aid))
        raise FollowUp(Plan(tuple(script_call(RETIRED_SEED, [0, *p], [retired(a)])
                                  for a, p in per_agent.items()), lambda _: marked))

    first = owners(ids, timeline)  # (not .map: its f would apply to the follow-up too)
    return Plan(first.calls, lambda raw: then(first.parse(raw)))
