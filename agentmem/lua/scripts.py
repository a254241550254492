"""Server-side scripts: every write and every multi-step query is one round trip.

Scripts are plain values (name, source, SHA1); the backends load and run them.
The write script is generic over declarations: it receives the key templates,
the index declarations and the records' field values, decides ids, checks every
key's type before writing anything, then writes with one variadic command per
key. A record is refused (nothing of it written) rather than half-written.
"""

from __future__ import annotations

from agentmem.lua.loader import Script, load

__all__ = ["ALL", "CLAIM", "CLAIM_LAYOUT", "DELETE", "GET_MANY", "PAGE", "RELATIVE_FETCH",
           "SET_SORTED_FETCH", "SIM_FETCH", "UPDATE", "WRITE", "WRITE_COLS", "ZRANGE_FETCH",
           "Script"]

WRITE = load("core/write.lua", "write")
WRITE_COLS = load("core/write_cols.lua", "write_cols")
CLAIM = load("core/claim.lua", "claim")
CLAIM_LAYOUT = load("core/claim_layout.lua", "claim_layout")
GET_MANY = load("core/get_many.lua", "get_many")
ZRANGE_FETCH = load("core/zrange_fetch.lua", "zrange_fetch")
SET_SORTED_FETCH = load("core/set_sorted_fetch.lua", "set_sorted_fetch")
RELATIVE_FETCH = load("core/relative_fetch.lua", "relative_fetch")
SIM_FETCH = load("core/sim_fetch.lua", "sim_fetch")
DELETE = load("core/delete.lua", "delete")
UPDATE = load("core/update.lua", "update")
PAGE = load("core/page.lua", "page")

ALL = (WRITE, WRITE_COLS, GET_MANY, ZRANGE_FETCH, SET_SORTED_FETCH, RELATIVE_FETCH, SIM_FETCH,
       DELETE, UPDATE, PAGE)
