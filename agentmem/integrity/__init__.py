"""Check and repair: orphans, missing index entries and wrong counters.

May import: ``agentmem.errors``, ``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository``, ``agentmem.backends``.
"""

from agentmem.integrity.checker import IntegrityReport, check, repair

__all__ = ["IntegrityReport", "check", "repair"]
