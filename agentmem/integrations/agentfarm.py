"""A drop-in for AgentFarm's ``DataLogger.log_agent_action`` that writes through agentmem.

``AgentFarmLogger(memory, archive, simulation_id)`` has AgentFarm's
``log_agent_action`` signature and behaviour (``step_number < 0`` raises
``ValueError``; ``details`` deep-copied, ``action_taken`` / ``action_taken_mapped``
added to it when not ``None``, stored as JSON or ``NULL`` when empty), plus
``flush_if_needed()`` and ``flush_all_buffers()``. Each action is stored in
Redis at once (with all its indices) and archived in bulk to the SQL archive's
``agent_actions`` table by a :class:`agentmem.dualwrite.DualWriter`.
``log_step``, ``log_agent`` and ``log_health_incident`` are forwarded to a
wrapped AgentFarm ``DataLogger`` when one is given, and raise ``ConfigError``
otherwise. See ``docs/agentfarm.md``.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.dualwrite.failover import DEFAULT_RETRY_INTERVAL
from agentmem.dualwrite.writer import DEFAULT_BUFFER_SIZE, DEFAULT_INTERVAL, DualWriter
from agentmem.errors import ConfigError

__all__ = ["AgentFarmLogger"]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


class AgentFarmLogger:
    """AgentFarm's ``DataLogger`` action protocol, stored in Redis and the SQL archive.

    ``wrapped`` is an optional AgentFarm ``DataLogger`` (or anything with its
    methods) that receives ``log_step``, ``log_agent`` and ``log_health_incident``
    and whose ``flush_if_needed`` / ``flush_all_buffers`` are called with ours.
    ``buffer_size`` and ``commit_interval`` are AgentFarm's names and defaults
    (1000 rows, 30 seconds) for the archive's bulk writes; ``background=True``
    moves all I/O to a thread (see ``docs/dualwrite.md``). While Redis is
    unreachable, actions go to the archive and a replay journal (``journal``,
    ``retry_interval``); ``strict=True`` raises instead (see ``docs/failover.md``).
    """

    def __init__(
        self,
        memory: Memory,
        archive: Archive,
        simulation_id: str,
        *,
        wrapped: Any = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        commit_interval: float = DEFAULT_INTERVAL,
        background: bool = False,
        strict: bool = False,
        journal: str | os.PathLike[str] | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.simulation_id = simulation_id
        self.wrapped = wrapped
        self.writer = DualWriter(memory, archive, buffer_size=buffer_size,
                                 interval=commit_interval, background=background,
                                 strict=strict, journal=journal,
                                 retry_interval=retry_interval)

    # -- AgentFarm's action protocol ------------------------------------------------------

    def log_agent_action(
        self,
        step_number: int,
        agent_id: str,
        action_type: str,
        action_target_id: str | None = None,
        reward: float | None = None,
        details: dict[str, Any] | None = None,
        module_type: str | None = None,
        module_id: str | None = None,
        action_taken: Any = None,
        action_taken_mapped: Any = None,
    ) -> None:
        """Log one action as AgentFarm's ``DataLogger.log_agent_action`` does.

        ``step_number < 0`` raises ``ValueError`` and stores nothing. ``details``
        is deep-copied (the caller's dict is never changed); ``action_taken`` and
        ``action_taken_mapped`` are added to the copy when not ``None``; an empty
        result is stored as ``NULL``. The action is in Redis when this returns
        (blocking mode) and reaches ``agent_actions`` with the next bulk write.
        """
        step_number = _plain(step_number)
        if step_number < 0:
            raise ValueError("step_number must be non-negative")
        if not isinstance(action_type, str):
            action_type = str(action_type)  # as AgentFarm does (an Enum gives "Cls.NAME")
        details_copy: dict[str, Any] = copy.deepcopy(details) if details else {}
        if action_taken is not None:
            details_copy["action_taken"] = _plain(action_taken)
        if action_taken_mapped is not None:
            details_copy["action_taken_mapped"] = _plain(action_taken_mapped)
        self.writer.record(
            agent_id=agent_id,
            simulation_id=self.simulation_id,
            step_number=step_number,
            action_type=action_type,
            action_target_id=action_target_id,
            reward=_plain(reward),
            details=details_copy or None,
            module_type=module_type,
            module_id=module_id,
        )

    def flush_if_needed(self) -> None:
        """Archive the buffered actions if ``commit_interval`` has passed (once per step).

        The wrapped logger's ``flush_if_needed`` is called too.
        """
        self.writer.flush_if_needed()
        if self.wrapped is not None:
            self.wrapped.flush_if_needed()

    def flush_all_buffers(self) -> None:
        """Archive every buffered action, then flush the wrapped logger's buffers."""
        self.writer.flush()
        if self.wrapped is not None:
            self.wrapped.flush_all_buffers()

    def close(self) -> None:
        """Flush everything (ours and the wrapped logger's) and close the writer."""
        if self.wrapped is not None:
            self.wrapped.flush_all_buffers()
        self.writer.close()

    def __enter__(self) -> AgentFarmLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the rest of DataLogger: forwarded ------------------------------------------------

    def _target(self, method: str) -> Any:
        if self.wrapped is None:
            raise ConfigError(
                f"{method} is not stored by agentmem: pass the AgentFarm DataLogger as "
                f"AgentFarmLogger(..., wrapped=logger) to forward it"
            )
        return getattr(self.wrapped, method)

    def log_step(self, *args: Any, **kwargs: Any) -> Any:
        """Forwarded to the wrapped logger's ``log_step`` (``ConfigError`` without one)."""
        return self._target("log_step")(*args, **kwargs)

    def log_agent(self, *args: Any, **kwargs: Any) -> Any:
        """Forwarded to the wrapped logger's ``log_agent`` (``ConfigError`` without one)."""
        return self._target("log_agent")(*args, **kwargs)

    def log_health_incident(self, *args: Any, **kwargs: Any) -> Any:
        """Forwarded to the wrapped ``log_health_incident`` (``ConfigError`` without one)."""
        return self._target("log_health_incident")(*args, **kwargs)
