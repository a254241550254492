"""Plans: which commands an operation needs, and how to read the replies (pure).

Owns ``Plan`` and ``Call``, the runner protocols and the ``operation``
descriptor, the key space of every layout version, the write planner and the
plans and geometry of radius search, and the Query Engine's typed query builder
and index definitions (``FT.*`` calls and their replies). Building a plan checks its arguments and
never does I/O, so one definition serves the blocking, asyncio and cluster
runners.

May import: ``agentmem.errors``, ``agentmem.config``, ``agentmem.model``, ``agentmem.lua``.
"""
