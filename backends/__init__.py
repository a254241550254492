"""Storage backends of agentmem (installed as ``agentmem.backends``): the runners
that carry plans to Redis, Valkey and Redis Cluster, and the SQL archive.

The only package that imports redis-py and SQLAlchemy.

May import: ``agentmem.errors``, ``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository``.
"""
