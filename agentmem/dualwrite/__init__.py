"""Dual-write: Redis and the SQL archive kept in agreement.

Owns the unit of work (``DualWriter``), its background thread and its archive
writes (``archiver``: when one is due, and the archive thread), its durability
modes and the outbox that hands what Redis acknowledged to the archive
(``outbox``: drain, leases), exit on SIGTERM (``signals``), the seeding of the
retired-id marks from the archive (``ids``), dropping what a writer holds and has
not archived (``discarding``), the reads that fall back to the
archive, failover (per-writer journals, probing, replay) and the bulk sync
between Redis and the archive.

May import: ``agentmem.errors``, ``agentmem.config``,
``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository``, ``agentmem.backends``.
"""

from agentmem.dualwrite.writer import DualWriter

__all__ = ["DualWriter"]
