"""The Lua scripts of the key-layout migrations (:mod:`agentmem.migrations.redis`): the
migration's state, replaced in one step, and revision 0003's compare-and-set."""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["DETAILS_CAS", "MIGRATION_STATE"]

MIGRATION_STATE = load("migrations/migration_state.lua", "migration_state")
DETAILS_CAS = load("migrations/details_cas.lua", "details_cas")
