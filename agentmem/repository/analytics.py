"""Section 8's analyses, each one plan built on a query of :class:`AgentQueries`."""

from __future__ import annotations

from agentmem.model.analytics import Lesson, SequenceAnalysis, analyze_sequence, learn
from agentmem.model.records import Action
from agentmem.plans.keyspace import (
    check_action_type,
)
from agentmem.plans.plan import (
    Plan,
)
from agentmem.plans.runner import operation
from agentmem.repository.agentqueries import AgentQueries


class ActionAnalytics(AgentQueries):
    """Learning from past actions, sequence analysis, successful interactions."""

    @operation
    def learn_from_past_actions(self, /, agent_id: str, action_type: str,
                                position: tuple[float, float] | None = None, limit: int = 5,
                                radius: float = 0.2) -> Plan[Lesson | None]:
        """Section 8.1: average reward and best action among the newest ``limit`` of a type."""
        check_action_type(action_type)
        return AgentQueries.by_type.build(self, agent_id, action_type, limit).map(
            lambda past: learn(past, position, radius))

    @operation
    def analyze_action_sequence(self, /, agent_id: str, length: int = 5
                                ) -> Plan[SequenceAnalysis | None]:
        """Section 8.3 over the ``length`` most recent actions, in one round trip."""
        return AgentQueries.recent.build(self, agent_id, length).map(analyze_sequence)

    @operation
    def find_successful_interactions_with(self, /, agent_id: str, target_id: str, limit: int = 3
                                          ) -> Plan[list[Action]]:
        """Section 8.2 (same as :meth:`successful_interactions`)."""
        return AgentQueries.successful_interactions.build(self, agent_id, target_id, limit)
