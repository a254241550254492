"""Agent-level queries answered by the SQL archive, shaped like the Redis ones.

While Redis is unreachable, the dual writer answers the queries the archive
can answer from it (see ``docs/failover.md``). Each function here returns what
the :class:`~agentmem.repository.actions.ActionRepository` method of the same name returns
for the same data, in the same order:

- ``by_type`` / ``by_target``: newest first, by step, then by action id;
- ``timeline``: by step, then id (oldest first unless ``newest_first``);
- ``recent``: the ``n`` newest, newest first;
- ``high_reward``: ``reward >= min_reward``, highest first, then by id (descending);
- ``get``: one action by its string id (in one simulation, or the one archived last),
  or ``None``.

Ids compare byte by byte, as Redis compares members (on PostgreSQL with the
``C`` collation). Rows AgentFarm wrote without an agentmem id have ``action_id``
``None`` and sort after every id of their step.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.exc import SQLAlchemyError

from agentmem.backends.sql import (
    Archive,
    action_extras,
    agent_actions,
    backend_error,
    decode_row,
    select_actions,
)
from agentmem.errors import InvalidInput
from agentmem.model.records import Action

__all__ = ["action_ids", "by_target", "by_type", "get", "high_reward", "recent",
           "retired_marks", "timeline"]


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"limit must be a non-negative int or None, got {limit!r}")
    return limit


def _bound(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidInput(f"{what} must be a number, got {value!r}")
    return float(value)


def _text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    return value


def _id_column(archive: Archive) -> ColumnElement[Any]:
    col: ColumnElement[Any] = action_extras.c.action_id
    if archive.engine.dialect.name == "postgresql":
        col = col.collate("C")
    return col


def _order(archive: Archive, first: ColumnElement[Any], *, descending: bool
           ) -> list[ColumnElement[Any]]:
    ident = _id_column(archive)
    row = agent_actions.c.action_id
    if descending:
        # NULL ids (rows AgentFarm wrote) after the ids of their step
        return [first.desc(), ident.is_(None).asc(), ident.desc(), row.desc()]
    return [first.asc(), ident.is_(None).desc(), ident.asc(), row.asc()]


def _run(archive: Archive, stmt: Select[Any], limit: int | None) -> list[Action]:
    if limit is not None:
        if limit == 0:
            return []
        stmt = stmt.limit(limit)
    return [decode_row(r) for r in archive.rows(stmt)]


def _agent(archive: Archive, agent_id: str) -> Select[Any]:
    return select_actions(archive.action_columns).where(
        agent_actions.c.agent_id == _text(agent_id, "agent_id"))


def action_ids(archive: Archive, agent_id: str) -> set[str]:
    """Every agentmem string id archived for ``agent_id`` (in any simulation)."""
    x = action_extras.c
    stmt = select(x.action_id).where(x.agent_id == _text(agent_id, "agent_id"))
    try:
        with archive.engine.connect() as conn:
            return set(conn.execute(stmt).scalars())
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc


def retired_marks(archive: Archive) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """What the archive says about ids already given, to seed an empty Redis: the highest
    archived step per (agent, simulation), and the highest ``.r<n>`` suffix per agent."""
    a, x = agent_actions.c, action_extras.c
    steps = (select(a.agent_id, a.simulation_id, func.max(a.step_number))
             .where(a.simulation_id.is_not(None))
             .group_by(a.agent_id, a.simulation_id))
    suffixed = select(x.agent_id, x.action_id).where(x.action_id.like("%.r%"))
    marks: dict[tuple[str, str], int] = {}
    seqs: dict[str, int] = {}
    try:
        with archive.engine.connect() as conn:
            for agent, sim, step in conn.execute(steps):
                marks[str(agent), str(sim)] = int(step)
            for agent, aid in conn.execute(suffixed):
                tail = str(aid).rsplit(".r", 1)[1]
                if tail.isdigit():
                    seqs[agent] = max(seqs.get(agent, 0), int(tail))
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
    return marks, seqs


def get(archive: Archive, agent_id: str, action_id: str, *,
        simulation_id: str | None = None) -> Action | None:
    """The archived action ``action_id`` of ``agent_id`` in ``simulation_id``, or ``None``.

    An action is archived under (simulation, agent, id), so one id may be archived once
    per simulation. Without ``simulation_id`` the row archived last (the highest row id)
    of those is returned: the same one on every call."""
    stmt = _agent(archive, agent_id).where(
        action_extras.c.action_id == _text(action_id, "action_id"))
    if simulation_id is not None:
        stmt = stmt.where(
            action_extras.c.simulation_id == _text(simulation_id, "simulation_id"))
    stmt = stmt.order_by(agent_actions.c.action_id.desc())
    found = _run(archive, stmt, 1)
    return found[0] if found else None


def _newest_where(archive: Archive, agent_id: str, condition: ColumnElement[bool],
                  limit: int | None) -> list[Action]:
    stmt = _agent(archive, agent_id).where(condition)
    stmt = stmt.order_by(*_order(archive, agent_actions.c.step_number, descending=True))
    return _run(archive, stmt, _limit(limit))


def by_type(archive: Archive, agent_id: str, action_type: str, limit: int | None = None
            ) -> list[Action]:
    """The agent's actions of one type, newest first (by step, then id)."""
    return _newest_where(archive, agent_id,
                         agent_actions.c.action_type == _text(action_type, "action_type"),
                         limit)


def by_target(archive: Archive, agent_id: str, target_id: str, limit: int | None = None
              ) -> list[Action]:
    """The agent's actions aimed at ``target_id``, newest first."""
    return _newest_where(archive, agent_id,
                         agent_actions.c.action_target_id == _text(target_id, "target_id"),
                         limit)


def timeline(archive: Archive, agent_id: str, start: int | None = None, end: int | None = None,
             *, newest_first: bool = False, limit: int | None = None) -> list[Action]:
    """Actions with ``start <= step_number <= end`` (either bound open), oldest first."""
    stmt = _agent(archive, agent_id)
    lo, hi = _bound(start, "start"), _bound(end, "end")
    if lo is not None:
        stmt = stmt.where(agent_actions.c.step_number >= lo)
    if hi is not None:
        stmt = stmt.where(agent_actions.c.step_number <= hi)
    stmt = stmt.order_by(*_order(archive, agent_actions.c.step_number,
                                 descending=newest_first))
    return _run(archive, stmt, _limit(limit))


def recent(archive: Archive, agent_id: str, n: int = 10) -> list[Action]:
    """The ``n`` most recent actions, newest first."""
    return timeline(archive, agent_id, newest_first=True, limit=_limit(n))


def high_reward(archive: Archive, agent_id: str, min_reward: float = 0.5,
                limit: int | None = 10) -> list[Action]:
    """Actions with ``reward >= min_reward``, highest reward first."""
    stmt = _agent(archive, agent_id)
    lo = _bound(min_reward, "min_reward")
    stmt = stmt.where(agent_actions.c.reward.is_not(None))
    if lo is not None and lo != -math.inf:
        stmt = stmt.where(agent_actions.c.reward >= lo)
    stmt = stmt.order_by(*_order(archive, agent_actions.c.reward, descending=True))
    return _run(archive, stmt, _limit(limit))
