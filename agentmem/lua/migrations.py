"""The Lua scripts of the key-layout migrations (:mod:`agentmem.migrations.redis`): the
migration's state, replaced in one step, revision 0003's compare-and-set and revision
0004's renaming of a hash's fields."""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["DETAILS_CAS", "MIGRATION_STATE", "RENAME_FIELDS"]

MIGRATION_STATE = load("migrations/migration_state.lua", "migration_state")
DETAILS_CAS = load("migrations/details_cas.lua", "details_cas")
RENAME_FIELDS = load("migrations/rename_fields.lua", "rename_fields")
