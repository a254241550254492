"""The Lua scripts of the dual writer's outbox (:mod:`agentmem.dualwrite.outbox`):
acknowledging what was archived, claiming a stopped writer's outbox, releasing the
drain lock; appending to it on a Redis Cluster (on one server the write script appends
in the records' own atomic step); and seeding the retired marks of an empty Redis from
the archive."""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["OUTBOX_ACK", "OUTBOX_APPEND", "OUTBOX_CLAIM", "OUTBOX_UNLOCK", "RETIRED_SEED",
           "RETIRED_SEEDED", "RETIRED_SEEDING"]

OUTBOX_ACK = load("dualwrite/outbox_ack.lua", "outbox_ack")
OUTBOX_APPEND = load("dualwrite/outbox_append.lua", "outbox_append")
OUTBOX_CLAIM = load("dualwrite/outbox_claim.lua", "outbox_claim")
OUTBOX_UNLOCK = load("dualwrite/outbox_unlock.lua", "outbox_unlock")
RETIRED_SEED = load("dualwrite/retired_seed.lua", "retired_seed")
RETIRED_SEEDED = load("dualwrite/retired_seeded.lua", "retired_seeded")
RETIRED_SEEDING = load("dualwrite/retired_seeding.lua", "retired_seeding")
