"""The domain model: what is stored (pure, no I/O).

Owns records (``Record``, ``Action``, ``IMAction``), their storage hints
(``fields``), strict JSON values, the codec that turns a model into hash fields
and back, the declarative API (``declare``) and the pure computations over
actions (importance, lessons, sequence analysis).

May import: ``agentmem.errors``. Nothing else of agentmem; no redis, no SQL.
"""
