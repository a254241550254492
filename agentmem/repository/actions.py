"""The action repository: every query of the specification, each one round trip.

:class:`ActionRepository` (blocking) and :class:`AsyncActionRepository` (asyncio)
are one facade over the operations, written once as plans and split by concern:

- :mod:`~agentmem.repository.actioncore`: options, writes, the grid-cell check;
- :mod:`~agentmem.repository.agentqueries`: per-agent queries and the history
  across the memory tiers;
- :mod:`~agentmem.repository.simqueries`: simulation-level queries;
- :mod:`~agentmem.repository.nearby`: radius search;
- :mod:`~agentmem.repository.analytics`: section 8's analyses;
- :mod:`~agentmem.repository.querying`: ad-hoc queries on the Query Engine;
- :mod:`~agentmem.repository.actionverbs`: ``get``/``exists``/``delete`` by id alone,
  ``delete`` in every tier, ``update`` and ``page``.
"""

from __future__ import annotations

from agentmem.plans.runner import Asynchronous, Blocking
from agentmem.repository.actioncore import ActionCore, check_options
from agentmem.repository.actionverbs import ActionVerbs
from agentmem.repository.analytics import ActionAnalytics
from agentmem.repository.nearby import RadiusSearch
from agentmem.repository.querying import ActionSearch
from agentmem.repository.simqueries import SimulationQueries
from agentmem.repository.steplog import AsyncStepLogs, StepLogs

__all__ = ["ActionCore", "ActionOps", "ActionRepository", "AsyncActionRepository",
           "check_options"]


class ActionOps(ActionVerbs, ActionAnalytics, SimulationQueries, RadiusSearch, ActionSearch):
    """Action queries; use :class:`ActionRepository` or :class:`AsyncActionRepository`.

    ``ttl`` is the action hash's TTL in seconds (``None``: never expires; default one
    day), ``relative_index_size`` how many ids the relative index keeps (default 20),
    ``embedding_dim`` the length every stored embedding must have, ``grid_cell`` the
    side of a cell of the radius-search grid (every client of the data must use the
    same; see ``docs/search.md``).
    """


class ActionRepository(ActionOps, Blocking, StepLogs):
    """Blocking action repository."""


class AsyncActionRepository(ActionOps, Asynchronous, AsyncStepLogs):
    """asyncio action repository (every method is awaited)."""
