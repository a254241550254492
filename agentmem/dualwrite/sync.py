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

from agentmem.backends.archivedelete import write_updated
from agentmem.dualwrite.ids import held, held_in_im
from agentmem.errors import DuplicateId, InvalidInput, WriteError
from agentmem.model.records import Action, IMAction, same_action
from agentmem.plans.plan import command, single

if TYPE_CHECKING:
    from agentmem.backends.redis import Memory
    from agentmem.backends.sql import Archive

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
    skips every action whose string id is archived already, even one updated in Redis
    since (the same identity and write time; ``archivedelete.write_updated``: what was
    read may be older than a row ``maintain`` archived meanwhile; STM's version reaches
    the archive when ``maintain`` moves the action). Actions whose hash
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
        if actions:  # (an action updated since it was archived: the archived row stays)
            inserted += write_updated(archive, actions, replace=False)
        if progress is not None:
            progress(min(start + chunk, total), total)
    return inserted


def _same_identity(held: Action | IMAction, a: Action) -> bool:
    """Whether the action Redis holds under ``a``'s id is ``a``, maybe updated since: the
    same simulation, step and type (``actions.update`` changes content, not these)."""
    return (held.simulation_id == a.simulation_id and held.step_number == a.step_number
            and held.action_type == a.action_type)


def _not_in_im(memory: Memory, actions: list[Action]) -> list[Action]:
    """Those of ``actions`` that intermediate memory does not hold (under its id, as
    :func:`_same_identity`: it left STM through ``maintain``); one round trip."""
    im = held_in_im(memory, ((a.agent_id, str(a.action_id)) for a in actions))
    return [a for a in actions if (m := im.get((a.agent_id, str(a.action_id)))) is None
            or not _same_identity(m, a)]


MAX_RENAME_TRIES = 10_000
"""Ids tried for one action whose id another action holds in Redis, before giving up."""


def _taken(memory: Memory, archive: Archive, refused: list[Action]) -> int:
    """Handle the actions Redis refused because their id is taken; return how many were
    stored. Redis (STM or IM) holding the action under the id (:func:`_same_identity`):
    it is there already, Redis's version kept. Another action (of another simulation
    with the same agent ids, docs/sync.md): the archived action is stored under a new id
    and renamed in the archive (:func:`_store_renamed`)."""
    keys = [(a.agent_id, str(a.action_id)) for a in refused]
    stm = held(memory, keys)
    im = held_in_im(memory, (k for k in keys if k not in stm))
    stored = 0
    for a, k in zip(refused, keys, strict=True):
        holder = stm.get(k) or im.get(k)
        if holder is None or _same_identity(holder, a):
            continue  # None: only an index entry of an expired hash holds it (docs/sync.md)
        stored += _store_renamed(memory, archive, a)
    return stored


def _store_renamed(memory: Memory, archive: Archive, a: Action) -> int:
    """Store ``a``, whose id another action holds in Redis, under the first of
    ``{agent}-{step}-{type}``, then its ``.1``, ``.2`` … that neither the archive (for
    its simulation and agent) nor Redis (for its agent) holds, and give its archived row
    that id. An id Redis holds with this very action (a load that stopped between the two
    steps, or a concurrent one) is taken over. Returns 1 when stored, 0 when found."""
    sim, agent, old = a.simulation_id, a.agent_id, str(a.action_id)
    base = f"{agent}-{a.step_number}-{a.action_type}"
    archived = {aid for _, _, aid in archive.existing_ids([a.model_copy(
        update={"action_id": None})])}
    for n in range(MAX_RENAME_TRIES):
        new = f"{base}.{n}" if n else base
        if new in archived:
            continue
        moved = Action(**{**a.__dict__, "action_id": new})  # validated: an id Redis can hold
        try:
            memory.actions.add(moved)
            new_record = 1
        except DuplicateId:
            h = held(memory, [(agent, new)]).get((agent, new))
            if h is None or not same_action(h, moved, float32=archive.float32_fields):
                continue
            new_record = 0
        archive.rename_id(sim, agent, old, new)
        return new_record
    raise WriteError(f"no free id for action {old!r} of agent {agent!r} in simulation "
                     f"{sim!r} after {MAX_RENAME_TRIES} tries", stored=[], failed={0: old})


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
    memory's TTL. A record whose id Redis holds (``DuplicateId``) is looked up
    there: an action of the same simulation, step and type is this one, already there
    (maybe updated since; so is one that intermediate memory holds: it left STM through
    ``maintain``); another action (of another simulation with the same agent ids,
    whose keys Redis shares) makes the record go in under the next id free in Redis and
    the archive, which the archived row then takes (docs/sync.md). Any other refusal
    is raised. A second run stores 0 and changes no key. ``progress(done, total)`` is
    called after each chunk (rows read, the simulation's archived rows).
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
        if actions:
            try:
                stored += len(memory.actions.add_many(actions))
            except DuplicateId as exc:
                stored += len(exc.stored)
                stored += _taken(memory, archive, [actions[pos] for pos in sorted(exc.failed)])
        if progress is not None:
            progress(done, max(total, done))
