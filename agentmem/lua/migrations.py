"""The Lua scripts of the key-layout migrations (:mod:`agentmem.migrations.redis`): the
migration's state, replaced in one step, revision 0003's compare-and-set, revision
0004's renaming of a hash's fields and revision 0005's change of a types or targets key
between a set and a sorted set, chunk by chunk."""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["DETAILS_CAS", "INDEX_KIND", "MIGRATION_STATE", "RENAME_FIELDS"]

MIGRATION_STATE = load("migrations/migration_state.lua", "migration_state")
DETAILS_CAS = load("migrations/details_cas.lua", "details_cas")
RENAME_FIELDS = load("migrations/rename_fields.lua", "rename_fields")
INDEX_KIND = load("migrations/index_kind.lua", "index_kind")
