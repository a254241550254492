"""The Lua scripts of :mod:`agentmem.integrity`: each checks (and, in ``fix`` mode, repairs)
one bounded slice of the key space atomically.

Every script receives its first argument ``mode``: ``'check'`` only reports, ``'fix'``
also repairs what it found, inside the same script, so a removal or re-add is decided
on the server against the state of that moment (no writer interleaves with a script).
Keys are rendered from the layout's patterns, passed as arguments (``{name}``
placeholders replaced in Lua), so the scripts hard-code no key name.
"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["ACTIONS", "ALL", "COUNTS", "IM", "LIST", "LISTED", "ORPHANS", "STEPS"]

ORPHANS = load("integrity/integrity_orphans.lua", "integrity_orphans")
LIST = load("integrity/integrity_list.lua", "integrity_list")
STEPS = load("integrity/integrity_steps.lua", "integrity_steps")
ACTIONS = load("integrity/integrity_actions.lua", "integrity_actions")
LISTED = load("integrity/integrity_listed.lua", "integrity_listed")
IM = load("integrity/integrity_im.lua", "integrity_im")
COUNTS = load("integrity/integrity_counts.lua", "integrity_counts")

ALL = (ORPHANS, LIST, STEPS, ACTIONS, LISTED, IM, COUNTS)
