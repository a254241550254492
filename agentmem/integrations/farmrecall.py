"""The memory of every agent of a step in one round trip (issue 18 item 7).

An AgentFarm step asks, for each of its agents, what it did recently and what it did
of some action types. :func:`step_memory` queues all those queries in one batch
(:meth:`agentmem.Memory.batch`): 1,000 agents cost one round trip, not 1,000 or
3,000. :meth:`AgentFarmLogger.recall <agentmem.integrations.agentfarm.AgentFarmLogger.recall>`
stores the logger's buffered actions first, so that the step's reads see them.

May import: ``agentmem.repository``, ``agentmem.model``, ``agentmem.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentmem.errors import InvalidInput
from agentmem.model.records import Action
from agentmem.repository.batch import Batch

__all__ = ["AgentRecall", "step_memory"]


class _Batching(Protocol):
    def batch(self) -> Batch: ...


@dataclass(frozen=True)
class AgentRecall:
    """What one agent remembers: its ``recent`` actions, newest first, and per action
    type asked for, its actions of that type (``by_type[type]``), newest first."""

    recent: list[Action]
    by_type: dict[str, list[Action]] = field(default_factory=dict)


def _text(value: Any) -> str:
    """An agent id as agentmem stores it: AgentFarm's int ids as their text."""
    return value if isinstance(value, str) else str(value)


def step_memory(memory: _Batching, agent_ids: Iterable[Any], *, recent: int = 10,
                by_type: Sequence[str] = (), limit: int | None = 10
                ) -> dict[str, AgentRecall]:
    """For every agent of ``agent_ids``: its ``recent`` newest actions and, for every
    action type of ``by_type``, its newest ``limit`` actions of that type; all in one
    round trip (one batch). Keys: the agent ids as text (an int id ``7`` is ``"7"``,
    as AgentFarm's ``String`` columns hold it). Reads what Redis holds (short-term
    memory); a bad id or limit raises :class:`~agentmem.errors.InvalidInput` before
    anything is sent, a failure of one query is raised from the result."""
    if isinstance(by_type, str):
        raise InvalidInput(f"by_type must be a sequence of action types, got {by_type!r}")
    types = list(dict.fromkeys(by_type))
    agents = list(dict.fromkeys(_text(a) for a in agent_ids))
    with memory.batch() as b:
        queued = [(a, b.actions.recent(a, recent),
                   [(t, b.actions.by_type(a, t, limit=limit)) for t in types])
                  for a in agents]
    return {a: AgentRecall(r.result(), {t: h.result() for t, h in typed})
            for a, r, typed in queued}
