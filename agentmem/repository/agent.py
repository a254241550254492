"""The agent integration of section 5.2: a mixin that gives an agent a memory.

The agent class provides what the specification's agent has: ``agent_id``,
``environment`` (with ``simulation_id`` and ``time``), ``resource_level``,
``position_x``/``position_y``, ``use_memory`` and ``memory`` (an
:class:`~agentmem.repository.actions.ActionRepository`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentmem.model.analytics import Lesson, SequenceAnalysis
    from agentmem.model.records import Action
    from agentmem.repository.actions import ActionRepository


class _Environment(Protocol):
    simulation_id: str
    time: int


class AgentMemoryMixin:
    """Adds ``remember_agent_action`` and the section 8 queries to an agent class."""

    agent_id: str
    environment: _Environment
    memory: ActionRepository
    use_memory: bool = True
    resource_level: float | None = None
    position_x: float | None = None
    position_y: float | None = None

    def _position(self) -> tuple[float, float] | None:
        if self.position_x is None or self.position_y is None:
            return None
        return (float(self.position_x), float(self.position_y))

    def remember_agent_action(
        self,
        action_type: str,
        target_id: str | None = None,
        reward: float | None = None,
        details: Any = None,
        **extra: Any,
    ) -> str | None:
        """Store an action the agent just took; returns its id (None with memory off)."""
        if not self.use_memory:
            return None
        stored = self.memory.record(
            agent_id=self.agent_id,
            simulation_id=self.environment.simulation_id,
            step_number=self.environment.time,
            action_type=action_type,
            action_target_id=target_id,
            resources_before=self.resource_level,
            reward=reward,
            details=details,
            position=self._position(),
            **extra,
        )
        return stored.action_id

    def learn_from_past_actions(self, action_type: str, current_position: tuple[float, float]
                                | None = None, limit: int = 5) -> Lesson | None:
        if not self.use_memory:
            return None
        return self.memory.learn_from_past_actions(self.agent_id, action_type,
                                                   current_position, limit)

    def find_successful_interactions_with(self, target_id: str, limit: int = 3) -> list[Action]:
        if not self.use_memory:
            return []
        return self.memory.successful_interactions(self.agent_id, target_id, limit)

    def analyze_action_sequence(self, length: int = 5) -> SequenceAnalysis | None:
        if not self.use_memory:
            return None
        return self.memory.analyze_action_sequence(self.agent_id, length)
