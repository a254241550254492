"""Archiving the actions that leave short-term memory (before they move to IM).

The archive refuses an action whose id it holds with other content
(:class:`~agentmem.errors.DuplicateId`). For an action leaving STM that is, most
often, the same action updated in Redis after it was archived (``actions.update``
keeps the identity and the write time ``stored_at``): the STM hash is the newest
version, so the archived row is replaced by it. An action under an id the archive
holds for another action (another write time) is not archived and stays in STM,
reported as refused, so the others still move. See ``docs/tiers.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agentmem.backends.archivedelete import write_updating
from agentmem.backends.sql import Archive
from agentmem.model.records import Action

__all__ = ["archive_leaving"]

log = logging.getLogger("agentmem.tiers.archiving")


def archive_leaving(archive: Archive, actions: Sequence[Action]) -> tuple[int, list[Action]]:
    """Archive ``actions`` (one transaction); return the rows inserted and the actions
    that must stay in STM (the archive holds another action under their id)."""
    inserted, failed = write_updating(archive, actions)
    refused = [actions[n] for n in failed]
    if refused:
        log.error("the archive holds other actions under the ids of %d actions leaving STM; "
                  "they stay in STM: %s", len(refused),
                  [str(a.action_id) for a in refused[:5]])
    return inserted, refused
