"""Read-only Lua scripts of similarity search and sequence analytics (``docs/search.md``).

- :data:`VECTORS` reads, for a batch of action ids of one agent, the action type
  and the raw embedding bytes of each hash (``false`` where the hash is gone):
  one call per batch, many batches per round trip.
- :data:`TIMELINE` reads a timeline's ids and scores as one string.
- :data:`SEQUENCE` reads an agent's timelines (STM, and IM when asked) in a step
  range and returns, per action whose hash exists, its tier, id, step, type and
  reward: the columns the sequence analytics need, without the rest of the hash.

Key shapes are arguments, so the scripts hold no key names. Neither writes.
"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["ALL", "SEQUENCE", "TIMELINE", "VECTORS"]

VECTORS = load("search/vectors.lua", "vectors")
SEQUENCE = load("search/sequence.lua", "sequence")
TIMELINE = load("search/timeline_text.lua", "timeline_text")

ALL = (VECTORS, SEQUENCE, TIMELINE)
