"""What a replay's adoption must leave alone (:class:`Claims`): the ids that belong to
other actions than the journaled one being replayed.

May import: ``backends`` (sqlreads), ``dualwrite.outbox``, ``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentmem.backends import sqlreads
from agentmem.dualwrite.outbox import listed_ids
from agentmem.model.records import Action

if TYPE_CHECKING:
    from agentmem.dualwrite.failover import Failover

__all__ = ["Claims", "by_kind", "generated", "kind"]


class Claims:
    """What a replay's adoption (:meth:`Failover._adopt`) must leave alone, per agent, read
    once per replay and kept as it goes: the agent's archived ids, the ids of the
    writer's buffer of actions Redis acknowledged (not archived yet), the ids the other
    writers' outboxes list (acknowledged to them, perhaps stopped ones, not archived
    yet), the ids the replay has settled, and the journal's guesses."""

    def __init__(self, failover: Failover, journaled: Sequence[Action]) -> None:
        self.failover = failover
        self._ids: dict[str, set[str]] = {}
        self._settled: dict[str, set[str]] = {}
        self._guessed: dict[str, dict[str, Action]] = {}
        self._listed: set[tuple[str, str]] | None = None
        for j in journaled:
            self._guessed.setdefault(j.agent_id, {})[str(j.action_id)] = j

    def of(self, agent_id: str) -> set[str]:
        """The ids the agent's adoption leaves alone (may raise ``AgentMemError``: the
        archive cannot tell)."""
        ids = self._ids.get(agent_id)
        if ids is None:
            fo = self.failover
            ids = sqlreads.action_ids(fo.archive, agent_id)
            ids.update(aid for agent, aid in fo._buffered if agent == agent_id)
            if self._listed is None:  # other writers' outboxes: acknowledged to them, not
                self._listed = listed_ids(fo.memory, fo.own_outbox)  # archived yet
            ids.update(aid for agent, aid in self._listed if agent == agent_id)
            ids.update(self._settled.get(agent_id, ()))
            self._ids[agent_id] = ids
        return ids

    def add(self, a: Action) -> None:
        """The replay settled ``a`` under its id."""
        aid = str(a.action_id)
        self._settled.setdefault(a.agent_id, set()).add(aid)
        ids = self._ids.get(a.agent_id)
        if ids is not None:
            ids.add(aid)

    def guessed(self, agent_id: str) -> dict[str, Action]:
        """The agent's journaled actions by the ids they were guessed under."""
        return self._guessed.get(agent_id, {})


def generated(a: Action) -> bool:
    """Whether ``a``'s id is one of its family's (``{agent}-{step}-{type}``, ``.n``): an
    id the writer generated, which the script may have numbered otherwise. An id the
    caller chose is never renumbered, so no copy of it is looked for."""
    aid, base = str(a.action_id), f"{a.agent_id}-{a.step_number}-{a.action_type}"
    return aid == base or (aid.startswith(base + ".") and aid[len(base) + 1:].isdigit())


def kind(a: Action) -> tuple[str, str | None, str]:
    """What an adoption compares first: a stored copy of ``a`` has the same type, target
    and reward (the reward by its text: the sign of zero counts, as in ``same_action``)."""
    return a.action_type, a.action_target_id, repr(a.reward)


def by_kind(found: Sequence[Action]) -> dict[tuple[str, str | None, str], list[Action]]:
    """The actions stored at one agent's step by :func:`kind`, each list in ``found``'s
    order: an adoption reads only the actions that can be copies (it read every action
    of the step for every journaled action: a replay of a step of thousands of actions
    of one agent took minutes)."""
    out: dict[tuple[str, str | None, str], list[Action]] = {}
    for c in found:
        out.setdefault(kind(c), []).append(c)
    return out
