"""Renaming archived actions' string ids, several in one transaction.

A failover replay that finds a journaled action's id taken in Redis stores it under a
new id and renames its archived row (``docs/failover.md``). Renames can chain: the
archive's ``x`` becomes ``x.1`` while its ``x.1`` becomes ``x.2``. One at a time the
first would meet the second's row (the archive's unique key on simulation, agent and
id), so :func:`rename_archived` moves every row to a temporary id first (one no action
can have: it holds ``:``, which ids may not), then to its new id, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam
from sqlalchemy.exc import SQLAlchemyError

from agentmem.backends.sql import Archive, backend_error
from agentmem.backends.sqltables import action_extras
from agentmem.errors import InvalidInput

__all__ = ["rename_archived"]

Rename = tuple[str, str, str, str]
"""(simulation_id, agent_id, old id, new id)."""


def rename_archived(archive: Archive, renames: Sequence[Rename]) -> int:
    """Give the archived actions of ``renames`` their new ids, all or none (one
    transaction); returns how many rows were renamed (an old id the archive lacks
    renames nothing). A new id another archived action keeps raises
    :class:`~agentmem.errors.BackendError` (the archive's unique key), and nothing is
    renamed. An old id renamed twice in one call, or two renames to one new id, raise
    :class:`~agentmem.errors.InvalidInput`."""
    if not renames:
        return 0
    olds = [(s, a, o) for s, a, o, _ in renames]
    news = [(s, a, n) for s, a, _, n in renames]
    if len(set(olds)) < len(olds) or len(set(news)) < len(news):
        raise InvalidInput("each archived action is renamed once, each to an id of its own")
    x = action_extras.c
    stmt = (action_extras.update()
            .where(x.simulation_id == bindparam("s"), x.agent_id == bindparam("a"),
                   x.action_id == bindparam("o"))
            .values(action_id=bindparam("n")))
    temp = [f"agentmem:rename:{i}" for i in range(len(renames))]
    try:
        with archive.engine.begin() as conn:
            renamed = 0
            for (s, a, o, _), t in zip(renames, temp, strict=True):
                renamed += conn.execute(stmt, {"s": s, "a": a, "o": o, "n": t}).rowcount
            conn.execute(stmt, [{"s": s, "a": a, "o": t, "n": n}
                                for (s, a, _, n), t in zip(renames, temp, strict=True)])
            return renamed
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
