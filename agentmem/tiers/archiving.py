"""Archiving the actions that leave short-term memory (before they move to IM).

The archive refuses an action whose id it holds with other content
(:class:`~agentmem.errors.DuplicateId`). For an action leaving STM that is, most
often, the same action updated in Redis after it was archived (``actions.update``
keeps the identity and the write time ``stored_at``): the STM hash is the newest
version, so the archived row is replaced by it. An action under an id the archive
holds for another action (another write time) is not archived and stays in STM,
reported as refused, so the others still move. See ``docs/tiers.md``.

What is archived is the version the leaving actions were read in; an update between that
read and the move (``to_im``) would move its new version to IM and leave the archive
with the old one. So the actions are read with the digest of each hash as read
(:func:`read_versions`), and ``to_im`` moves only a hash whose digest is the same then;
one changed meanwhile stays in STM for the next ``maintain``, which archives its new
version before it moves it.

Two ``maintain`` runs on one agent while it is updated: the first reads a version and is
slow to archive it; the update comes; the second reads it, archives it and moves it to
IM. The first must then keep the archived row, not replace it with the older version
(its move finds the hash gone): :func:`current_in_stm` tells ``write_updating``, in its
write transaction, which actions about to replace their rows are still the version STM
holds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agentmem.backends.archivedelete import Current, write_updating
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.model.records import Action
from agentmem.plans.plan import Plan
from agentmem.repository.actions import ActionOps
from agentmem.tiers.shapes import _gather

__all__ = ["archive_leaving", "current_in_stm", "hash_digest", "read_versions"]

log = logging.getLogger("agentmem.tiers.archiving")


def archive_leaving(memory: Memory, archive: Archive,
                    leaving: Sequence[tuple[str, Sequence[tuple[Action, str]]]]
                    ) -> tuple[int, list[Action]]:
    """Archive the leaving actions (per agent, each with the digest of its hash as read)
    in one transaction; return the rows inserted and the actions that must stay in STM
    (the archive holds another action under their id). The archived row of the same
    action is replaced only while STM still holds the version read
    (:func:`current_in_stm`); else it is kept, as newer."""
    actions = [a for _, acts in leaving for a, _ in acts]
    inserted, failed = write_updating(archive, actions, replace=True,
                                      current=current_in_stm(memory, leaving))
    refused = [actions[n] for n in failed]
    if refused:
        log.error("the archive holds other actions under the ids of %d actions leaving STM; "
                  "they stay in STM: %s", len(refused),
                  [str(a.action_id) for a in refused[:5]])
    return inserted, refused


def hash_digest(raw: Mapping[bytes, bytes] | Sequence[bytes]) -> str:
    """The digest ``to_im`` compares (``lib/to_im_check.lua``) of a hash's ``HGETALL``
    reply, whatever the order of its fields (a hash table gives them in another order
    as it rehashes, with no write): for each field, sha1 of
    ``<length>:<name><length>:<value>``; each 8-hex-digit fifth of those summed over the
    fields, modulo 2**32; the five sums as decimals joined by ``.``."""
    pairs = raw.items() if isinstance(raw, Mapping) else zip(raw[::2], raw[1::2], strict=True)
    sums = [0] * 5
    for name, value in pairs:
        d = hashlib.sha1(b"%d:%b%d:%b" % (len(name), name, len(value), value)).hexdigest()
        for k in range(5):
            sums[k] += int(d[8 * k:8 * k + 8], 16)
    return ".".join(str(s % 2**32) for s in sums)


def read_versions(memory: Memory, agent_id: str, ids: Sequence[str]
                  ) -> Plan[list[tuple[Action, str] | None]]:
    """``actions.get_many(ids, agent_id=...)``'s calls (one round trip), each action with
    the :func:`hash_digest` of its hash as read; None where it is gone."""
    built = ActionOps.get_many.build(memory.actions, ids, agent_id=agent_id)
    decode = memory.actions.spec.codec.decode

    def parse(raw: list[Any]) -> list[tuple[Action, str] | None]:
        out: list[tuple[Action, str] | None] = []
        for part in raw:  # (get_many's replies: a list of HGETALL replies per call)
            if isinstance(part, Exception):
                raise part
            out += [(decode(h), hash_digest(h)) if h else None for h in part]
        return out

    return Plan(built.calls, parse)


def current_in_stm(memory: Memory, leaving: Sequence[tuple[str, Sequence[tuple[Action, str]]]]
                   ) -> Current:
    """For :func:`archive_leaving`: which of the leaving actions (positions in ``leaving``
    flattened, each action with the digest of its hash as read) STM still holds in the
    version read: its hash there with the digest read, asked in one round trip (per
    agent, ``get_many``'s calls: the agent's slot on a cluster).

    Any other state keeps the archived row. The hash updated since: the move finds it
    changed and keeps it in STM, and the next ``maintain`` archives that version. The
    hash gone: another ``maintain`` moved it after it archived a version at least as
    new, it was deleted, or it expired, when the archived row may be newer than the
    version read too (an update archived by ``archive_to_sql`` before it expired,
    review 105): an update that expires in STM keeps the version the archive has
    (``docs/durability.md``)."""
    flat = [(agent_id, str(a.action_id), seen) for agent_id, acts in leaving
            for a, seen in acts]

    def current(positions: Sequence[int]) -> list[int]:
        per_agent: dict[str, list[int]] = {}
        for n in positions:
            per_agent.setdefault(flat[n][0], []).append(n)
        found = memory.runner.run(_gather([
            read_versions(memory, agent_id, [flat[n][1] for n in ns])
            for agent_id, ns in per_agent.items()]))
        out = []
        for ns, read in zip(per_agent.values(), found, strict=True):
            for n, got in zip(ns, read, strict=True):
                if got is not None and got[1] == flat[n][2]:
                    out.append(n)
        return sorted(out)

    return current
