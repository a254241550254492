"""Integrations of agentmem with other frameworks (see ``docs/agentfarm.md``).

Owns ``AgentFarmLogger``, the drop-in for AgentFarm's ``DataLogger``.

May import: every package below it (``errors``, ``model``, ``lua``, ``plans``,
``repository``, ``backends``, ``dualwrite``, ``tiers``, ``integrity``,
``search``, ``migrations``); never ``app`` or ``cli``.
"""
