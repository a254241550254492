"""Search and analytics over stored actions: similarity (top-k cosine) and
sequence analytics; the server's vector index (``ServerVectorIndex``, the Query
Engine). Radius search is a plan (``agentmem.plans.radius``).

May import: ``agentmem.errors``, ``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository``, ``agentmem.backends``.
"""
