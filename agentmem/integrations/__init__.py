"""Integrations of agentmem with other frameworks (see ``docs/agentfarm.md``).

Owns ``AgentFarmLogger``, the drop-in for AgentFarm's ``DataLogger``, the rows it
writes (``farmrows``), writing them through AgentFarm's own database object
(``farmsession``) and every agent's memory of a step (``farmrecall``).

May import: every package below it (``errors``, ``model``, ``lua``, ``plans``,
``repository``, ``backends``, ``dualwrite``, ``tiers``, ``integrity``,
``search``, ``migrations``); never ``app`` or ``cli``.
"""
