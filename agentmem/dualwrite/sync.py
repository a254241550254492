"""Sync between the Redis memory and the SQL archive, both ways, idempotent.

- :func:`archive_to_sql` writes the actions of a simulation that the archive
  lacks (Redis -> SQL).
- :func:`load_from_sql` warms a Redis memory from an archive, for example an
  AgentFarm simulation database, writing every index of the layout (SQL ->
  Redis).

Running either a second time stores nothing and changes no key or row. See
``docs/sync.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentmem.dualwrite.ids import held_in_im
from agentmem.errors import DuplicateId, InvalidInput
from agentmem.plans.plan import command, single

if TYPE_CHECKING:
    from agentmem.backends.redis import Memory
    from agentmem.backends.sql import Archive
    from agentmem.model.records import Action

__all__ = ["archive_to_sql", "load_from_sql"]

DEFAULT_CHUNK = 5000


def _check_chunk(chunk: int) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InvalidInput(f"chunk must be a positive int, got {chunk!r}")


def archive_to_sql(memory: Memory, archive: Archive, simulation_id: str, *,
                   chunk: int = DEFAULT_CHUNK,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Write the actions of ``simulation_id`` held in Redis that the archive lacks.

    Reads ``simulation:{sim}:actions`` in slices of ``chunk`` ids (write order)
    with ``simulation_actions`` and hands each slice to ``Archive.write``, which
    skips every action whose string id is archived already. Actions whose hash
    has expired are not in Redis any more and are not written. Returns the rows
    inserted (0 on a second run). ``progress(done, total)`` is called after each slice
    (list entries read, the list's length).
    """
    _check_chunk(chunk)
    key = memory.actions.layout.key("sim_actions", simulation_id=simulation_id)
    total = memory.runner.run(single(command("LLEN", key), int))  # one server or a cluster
    inserted = 0
    for start in range(0, total, chunk):
        actions = memory.actions.simulation_actions(simulation_id, start, start + chunk - 1)
        if actions:
            inserted += archive.write(actions)
        if progress is not None:
            progress(min(start + chunk, total), total)
    return inserted


def _not_in_im(memory: Memory, actions: list[Action]) -> list[Action]:
    """Those of ``actions`` whose id intermediate memory does not hold (one round trip)."""
    im = held_in_im(memory, ((a.agent_id, str(a.action_id)) for a in actions))
    return [a for a in actions if (a.agent_id, str(a.action_id)) not in im]


def load_from_sql(archive: Archive, memory: Memory, simulation_id: str, *,
                  chunk: int = DEFAULT_CHUNK,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Write the archived actions of ``simulation_id`` into Redis; return records stored.

    Rows that have no agentmem string id (rows AgentFarm wrote) are first given
    one in the archive's side table, ``{agent_id}-{step}-{type}`` with the first
    free ``.n`` suffix in row order (``Archive.assign_ids``), so the same row
    always maps to the same id. Then the rows are read in row-id order, ``chunk``
    at a time, and written with ``mem.actions.add_many`` under their ids: every
    index of the layout is written as for any other write, and hashes get the
    memory's TTL. A record whose id is already taken in Redis is skipped (its
    ``DuplicateId`` is expected), and so is one held in intermediate memory (it left
    STM through ``maintain``: storing it again would hold one id in both tiers); any
    other refusal is raised. A second run stores 0 and changes no key.
    ``progress(done, total)`` is called after each chunk (rows read, the simulation's
    archived rows).
    """
    _check_chunk(chunk)
    archive.assign_ids(simulation_id)
    total = archive.count(simulation_id) if progress is not None else 0
    done = 0
    stored = 0
    after: int | None = None
    while True:
        rows = archive.read_rows(simulation_id, after=after, limit=chunk)
        if not rows:
            return stored
        after = rows[-1][0]
        done += len(rows)
        actions = _not_in_im(memory, [action for _, action in rows])
        if not actions:
            continue
        try:
            stored += len(memory.actions.add_many(actions))
        except DuplicateId as exc:
            stored += len(exc.stored)
        if progress is not None:
            progress(done, max(total, done))
