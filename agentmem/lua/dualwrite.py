"""The Lua scripts of the dual writer's outbox (:mod:`agentmem.dualwrite.outbox`):
acknowledging what was archived, claiming a stopped writer's outbox, releasing the
drain lock; and seeding the retired marks of an empty Redis from the archive. (The
outbox itself is appended to by the write script.)"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["OUTBOX_ACK", "OUTBOX_CLAIM", "OUTBOX_UNLOCK", "RETIRED_SEED"]

OUTBOX_ACK = load("dualwrite/outbox_ack.lua", "outbox_ack")
OUTBOX_CLAIM = load("dualwrite/outbox_claim.lua", "outbox_claim")
OUTBOX_UNLOCK = load("dualwrite/outbox_unlock.lua", "outbox_unlock")
RETIRED_SEED = load("dualwrite/retired_seed.lua", "retired_seed")
