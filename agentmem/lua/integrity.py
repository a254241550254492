"""The Lua scripts of :mod:`agentmem.integrity`: each checks (and, in ``fix`` mode, repairs)
one bounded slice of the key space atomically.

Every script receives its first argument ``mode``: ``'check'`` only reports, ``'fix'``
also repairs what it found, inside the same script, so a removal or re-add is decided
on the server against the state of that moment (no writer interleaves with a script).
Keys are rendered from the layout's patterns, passed as arguments (``{name}``
placeholders replaced in Lua), so the scripts hard-code no key name. Nor any hash field
name: the fields a script reads are passed too, as the store's layout keeps them
(``codec.wire``: layout 3's short names).
"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["ACTIONS", "ALL", "COUNTS", "IM", "INDEXED_FIELDS", "LIST", "LISTED", "ORPHANS",
           "RELATIVE", "RETIRE", "STEPS"]

INDEXED_FIELDS = ("simulation_id", "step_number", "action_type", "action_target_id", "reward",
                  "position_x", "position_y")
"""The action fields the index checks read, in the order ``integrity_actions`` and
``cluster_integrity_agent`` take their hash field names (each passed as
``codec.wire(name)`` of the store's layout; the cluster script takes ``stored_at`` after
them)."""

ORPHANS = load("integrity/integrity_orphans.lua", "integrity_orphans")
LIST = load("integrity/integrity_list.lua", "integrity_list")
STEPS = load("integrity/integrity_steps.lua", "integrity_steps")
ACTIONS = load("integrity/integrity_actions.lua", "integrity_actions")
LISTED = load("integrity/integrity_listed.lua", "integrity_listed")
IM = load("integrity/integrity_im.lua", "integrity_im")
COUNTS = load("integrity/integrity_counts.lua", "integrity_counts")
RETIRE = load("integrity/integrity_retire.lua", "integrity_retire")
RELATIVE = load("integrity/integrity_relative.lua", "integrity_relative")

ALL = (ORPHANS, LIST, STEPS, ACTIONS, LISTED, IM, COUNTS, RETIRE, RELATIVE)
