"""Deleting actions from the SQL archive (``Store.delete(..., archive=True)``).

An action is archived as one ``agent_actions`` row and its ``agentmem_action_extras``
row, keyed by (simulation, agent, agentmem id); both go in one transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from agentmem.backends.sql import Archive, agent_actions, backend_error
from agentmem.backends.sqltables import action_extras

__all__ = ["delete_archived"]


def delete_archived(archive: Archive, agent_id: str, action_id: str,
                    simulation_id: str | None = None) -> int:
    """Delete the archived action ``action_id`` of ``agent_id`` (of ``simulation_id``,
    or of every simulation when ``None``); the number of actions deleted."""
    x = action_extras.c
    where = [x.agent_id == agent_id, x.action_id == action_id]
    if simulation_id is not None:
        where.append(x.simulation_id == simulation_id)
    try:
        with archive.engine.begin() as conn:
            rows = list(conn.execute(select(x.row_id).where(*where)).scalars())
            if not rows:
                return 0
            conn.execute(delete(action_extras).where(x.row_id.in_(rows)))
            conn.execute(delete(agent_actions).where(agent_actions.c.action_id.in_(rows)))
            return len(rows)
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
