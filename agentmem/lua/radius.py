"""The read-only Lua script of radius search (``docs/search.md``), one round trip.

:data:`NEAR` reads the members of grid indices (:class:`~agentmem.model.schema.GridIndex`)
in given ranges of Z-order codes, reads each candidate's position (and the fields
it is filtered by) from its hash, keeps those within the radius, and returns the
nearest first. Key shapes are arguments, so it holds no key names.
"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["NEAR"]

NEAR = load("radius/near.lua", "near")
