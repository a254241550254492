"""Repositories: the operations on stored records, written once as plans.

Owns ``Repository`` / ``AsyncRepository`` (any declared model),
``ActionRepository`` / ``AsyncActionRepository`` (the specification's queries)
and ``AgentMemoryMixin``.

May import: ``agentmem.errors``, ``agentmem.config``, ``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``. No I/O of its own: runners do it.
"""
