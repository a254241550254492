"""The queries a :class:`~agentmem.dualwrite.DualWriter` answers: from Redis, or from
the SQL archive while Redis is unreachable (see ``docs/failover.md``).

Each method runs the :class:`~agentmem.repository.actions.ActionRepository` query of the same
name; when Redis cannot be reached (and the writer is not strict) it runs the
:mod:`agentmem.backends.sqlreads` twin on the archive, which returns the same
actions in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from agentmem.backends import sqlreads
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.model.records import Action

T = TypeVar("T")


class FallbackReads:
    """Agent-level reads with an archive fallback; mixed into the dual writer."""

    memory: Memory
    archive: Archive

    def _read(self, from_redis: Callable[[], T], from_archive: Callable[[], T]) -> T:
        raise NotImplementedError

    def by_type(self, agent_id: str, action_type: str, limit: int | None = None
                ) -> list[Action]:
        """``memory.actions.by_type``; from the archive while Redis is unreachable."""
        return self._read(lambda: self.memory.actions.by_type(agent_id, action_type, limit),
                          lambda: sqlreads.by_type(self.archive, agent_id, action_type, limit))

    def by_target(self, agent_id: str, target_id: str, limit: int | None = None
                  ) -> list[Action]:
        """``memory.actions.by_target``; from the archive while Redis is unreachable."""
        return self._read(lambda: self.memory.actions.by_target(agent_id, target_id, limit),
                          lambda: sqlreads.by_target(self.archive, agent_id, target_id, limit))

    def timeline(self, agent_id: str, start: int | None = None, end: int | None = None, *,
                 newest_first: bool = False, limit: int | None = None) -> list[Action]:
        """``memory.actions.timeline``; from the archive while Redis is unreachable."""
        return self._read(
            lambda: self.memory.actions.timeline(agent_id, start, end,
                                                 newest_first=newest_first, limit=limit),
            lambda: sqlreads.timeline(self.archive, agent_id, start, end,
                                      newest_first=newest_first, limit=limit))

    def recent(self, agent_id: str, n: int = 10) -> list[Action]:
        """``memory.actions.recent``; from the archive while Redis is unreachable."""
        return self._read(lambda: self.memory.actions.recent(agent_id, n),
                          lambda: sqlreads.recent(self.archive, agent_id, n))

    def high_reward(self, agent_id: str, min_reward: float = 0.5, limit: int | None = 10
                    ) -> list[Action]:
        """``memory.actions.high_reward``; from the archive while Redis is unreachable."""
        return self._read(
            lambda: self.memory.actions.high_reward(agent_id, min_reward, limit),
            lambda: sqlreads.high_reward(self.archive, agent_id, min_reward, limit))

    def get(self, agent_id: str, action_id: str) -> Action | None:
        """One action by id; from the archive while Redis is unreachable."""
        return self._read(lambda: self.memory.actions.get(action_id, agent_id=agent_id),
                          lambda: sqlreads.get(self.archive, agent_id, action_id))

