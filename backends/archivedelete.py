"""Deleting actions from the SQL archive (``Store.delete(..., archive=True)``), and
archiving actions that may have been updated in Redis since they were archived.

An action is archived as one ``agent_actions`` row and its ``agentmem_action_extras``
row, keyed by (simulation, agent, agentmem id); both go in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from sqlalchemy import Connection, delete, select

from agentmem.backends.sql import Archive, agent_actions
from agentmem.backends.sqltables import action_extras
from agentmem.backends.sqlwrite import Attempt
from agentmem.errors import DuplicateId
from agentmem.model.records import Action

__all__ = ["Current", "delete_archived", "write_updated", "write_updating"]


RACE_LOOKS = 5
"""How many times :func:`write_updating` looks again at rows another writer archived
while it wrote (PostgreSQL, where write transactions overlap) before it refuses them."""


class _Raced(Exception):
    """A row this write was to insert was archived meanwhile by another writer."""


Current = Callable[[Sequence[int]], Collection[int]]
"""Given the positions of actions about to replace their archived rows, the positions
whose version is still the one Redis holds (``tiers/archiving.current_in_stm``)."""


def write_updating(archive: Archive, actions: Sequence[Action], *, replace: bool,
                   current: Current | None = None) -> tuple[int, list[int]]:
    """Archive ``actions``; return the rows inserted and the positions of the actions
    refused: the archive holds another action under their id.

    The archive refuses an action whose id it holds with other content. When the held
    row has the action's identity and write time (``stored_at``), it is the same action
    in another version (``actions.update`` keeps both): then

    - ``replace``: the archived row is replaced by this version, in one write
      transaction (the old row deleted and the new one inserted together: no reader,
      and no crash, ever finds the action in neither). Only ``maintain`` replaces: it
      archives the version it read, then moves the hash only if it is still that
      version (``tiers/archiving.py``), so what it archived is the newest.
    - else the archived row is kept and the action counts as archived: a copy taken
      when the action was written (a dual writer's buffer) is its first version, and one
      read from Redis earlier (a drain, a sync) may be older than a row that
      ``maintain`` archived meanwhile; the version STM holds reaches the archive when
      ``maintain`` moves the action.

    ``current`` (with ``replace``): asked in that write transaction, after the held rows
    are looked up, which of the actions about to replace theirs are still the version
    Redis holds; the others are not written, their archived row kept and counted as
    archived (as without ``replace``). Two ``maintain`` runs on one agent while it is
    updated: the first reads a version, the second reads the update, archives it and
    moves it to IM; the first must not then replace the update's row with the older
    version it read. The check is atomic relative to the other's archive and move: on
    SQLite the write transaction holds the write lock from ``BEGIN`` (``BEGIN
    IMMEDIATE``), and a maintainer moves only after its archive transaction committed.
    On PostgreSQL two write transactions may overlap; one that replaces the row after
    this one looked it up deletes it and inserts a row of its own, so this one finds the
    identity taken when it inserts, and the transaction is rolled back and run again
    (:data:`RACE_LOOKS` times at most, then the action is refused and stays in STM),
    asking ``current`` again: it never overwrites the other's row. The same second look
    tells an action another writer archived meanwhile (kept or replaced by the rules
    above) from another action under its id (refused) (review 105: the race was
    reported as ``refused``, logged as an id taken by another action).

    A row that went since the first write looked (another process replaced it) is looked
    for again in that transaction, not refused."""
    try:
        return archive.write(actions), []
    except DuplicateId as exc:
        inserted = len(exc.stored)
        failed = sorted(exc.failed)
    x = action_extras.c

    def run(conn: Connection) -> tuple[int, list[int]]:
        held: dict[tuple[str, str, str], list[tuple[int, int | None]]] = {}
        groups: dict[tuple[str, str], list[str]] = {}
        for n in failed:
            a = actions[n]
            groups.setdefault((a.simulation_id, a.agent_id), []).append(str(a.action_id))
        for (sim, agent), ids in groups.items():
            for i in range(0, len(ids), 500):
                for row in conn.execute(select(x.action_id, x.row_id, x.stored_at).where(
                        x.simulation_id == sim, x.agent_id == agent,
                        x.action_id.in_(ids[i:i + 500]))):
                    held.setdefault((sim, agent, row[0]), []).append((row[1], row[2]))
        updated: list[int] = []
        refused: list[int] = []
        rows: list[int] = []
        got_of: dict[int, list[tuple[int, int | None]]] = {}
        replacing: list[int] = []
        for n in failed:
            a = actions[n]
            got = got_of[n] = held.get((a.simulation_id, a.agent_id, str(a.action_id)), [])
            if got and a.stored_at is not None and all(w == a.stored_at for _, w in got):
                replacing.append(n)
        same = set(replacing)
        if not replace:  # archived, in a version that may be newer than this one
            kept = same
        elif current is not None and replacing:  # no longer the version Redis holds
            kept = same - set(current(replacing))
        else:
            kept = set()
        for n in failed:
            got = got_of[n]
            if n in kept:
                continue
            if not got or n in same:
                updated.append(n)  # the same action, updated since it was archived (or
                rows += [r for r, _ in got]  # its row went since the first write looked)
            else:
                refused.append(n)
        for i in range(0, len(rows), 500):
            part = rows[i:i + 500]
            conn.execute(delete(action_extras).where(x.row_id.in_(part)))
            conn.execute(delete(agent_actions).where(agent_actions.c.action_id.in_(part)))
        if not updated:
            return 0, refused
        batch = archive._write(conn, [actions[n] for n in updated], Attempt(False))
        if batch.conflicts and looks[0] < RACE_LOOKS:
            raise _Raced  # another writer archived it since this one looked: look again
        refused += [updated[k] for k in batch.conflicts]
        return len(batch.main), sorted(refused)

    looks = [0]
    while True:
        try:
            more, refused = archive._transact(run)  # (rolled back when _Raced)
        except _Raced:
            looks[0] += 1
            continue
        return inserted + more, refused


def write_updated(archive: Archive, actions: Sequence[Action], *, replace: bool,
                  current: Current | None = None) -> int:
    """:func:`write_updating` (``current`` as there); the rows inserted. An action
    refused (the archive holds another action under its id) raises
    :class:`~agentmem.errors.DuplicateId` once the others are archived, as
    :meth:`Archive.write <agentmem.backends.sql.Archive.write>` does, with ``stored``
    (the ids archived or held) and ``failed`` (position -> reason)."""
    inserted, refused = write_updating(archive, actions, replace=replace,
                                       current=current)
    if refused:
        out = set(refused)
        raise DuplicateId(
            f"{len(refused)} of {len(actions)} actions not archived: the archive holds "
            f"other actions under their ids ({[str(actions[n].action_id) for n in refused[:5]]})",
            stored=[str(a.action_id) for n, a in enumerate(actions) if n not in out],
            failed=dict.fromkeys(refused, "EXISTS: the archive holds another action"))
    return inserted


def delete_archived(archive: Archive, agent_id: str, action_id: str,
                    simulation_id: str | None = None) -> int:
    """Delete the archived action ``action_id`` of ``agent_id`` (of ``simulation_id``,
    or of every simulation when ``None``); the number of actions deleted."""
    x = action_extras.c
    where = [x.agent_id == agent_id, x.action_id == action_id]
    if simulation_id is not None:
        where.append(x.simulation_id == simulation_id)

    def run(conn: Connection) -> int:
        rows = list(conn.execute(select(x.row_id).where(*where)).scalars())
        if rows:
            conn.execute(delete(action_extras).where(x.row_id.in_(rows)))
            conn.execute(delete(agent_actions).where(agent_actions.c.action_id.in_(rows)))
        return len(rows)

    # a write transaction (SQLite: BEGIN IMMEDIATE), run again when it lost a race
    return archive._transact(run)
