"""Check and repair: orphans, missing index entries and wrong counters.

May import: ``agentmem.errors``, ``agentmem.model``, ``agentmem.lua``,
``agentmem.plans``, ``agentmem.repository.base``, ``agentmem.backends``.
"""

from agentmem.integrity.check import IntegrityReport, check, repair

__all__ = ["IntegrityReport", "check", "repair"]
