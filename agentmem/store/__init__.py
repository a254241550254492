"""The composition root: :func:`open` builds a whole store, :class:`Store` holds and closes it.

Owns the one place where the parts meet: Redis (a URL, or the embedded server of
a data folder), the SQL archive, the dual writer with its failover, the memory
tiers, configured by :class:`~agentmem.config.StoreSettings` and closed in order.
See ``docs/configuration.md``.

May import: every package below it (``errors``, ``config``, ``model``, ``lua``,
``servers``, ``plans``, ``repository``, ``backends``, ``dualwrite``, ``tiers``,
``integrity``, ``search``, ``migrations``); never ``integrations``, ``app`` or ``cli``.
"""

from agentmem.store.opening import Store, open

__all__ = ["Store", "open"]
