"""Deleting actions from the SQL archive (``Store.delete(..., archive=True)``), and
archiving actions that may have been updated in Redis since they were archived.

An action is archived as one ``agent_actions`` row and its ``agentmem_action_extras``
row, keyed by (simulation, agent, agentmem id); both go in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from agentmem.backends import sqlreads
from agentmem.backends.sql import Archive, agent_actions, backend_error
from agentmem.backends.sqltables import action_extras
from agentmem.errors import DuplicateId
from agentmem.model.records import Action

__all__ = ["delete_archived", "write_updating"]


def write_updating(archive: Archive, actions: Sequence[Action]) -> tuple[int, list[int]]:
    """Archive ``actions`` (one transaction); return the rows inserted and the positions
    of the actions refused: the archive holds another action under their id.

    The archive refuses an action whose id it holds with other content. When the held
    row has the action's identity and write time (``stored_at``), it is the same action
    updated in Redis after it was archived (``actions.update`` keeps both): the archived
    row is replaced by this newer version instead."""
    try:
        return archive.write(actions), []
    except DuplicateId as exc:
        inserted = len(exc.stored)
        failed = sorted(exc.failed)
    updated, refused = [], []
    for n in failed:
        a = actions[n]
        held = sqlreads.get(archive, a.agent_id, str(a.action_id),
                            simulation_id=a.simulation_id)
        if (held is not None and held.stored_at is not None and held.stored_at == a.stored_at):
            updated.append(a)  # the same action, updated since it was archived
        else:
            refused.append(n)
    for a in updated:  # if this stops half-way, the next write does it again
        delete_archived(archive, a.agent_id, str(a.action_id), a.simulation_id)
    if updated:
        inserted += archive.write(updated)
    return inserted, refused


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
