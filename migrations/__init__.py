"""Key-layout revisions of agentmem (installed as ``agentmem.migrations``).

The layout versions themselves are defined in :mod:`agentmem.plans.keyspace`; this
package holds the revisions that move data from one version to the next.
Version 1, the specification's layout, is the first and needs no revision.

May import: every package below it (``errors``, ``model``, ``lua``, ``plans``,
``repository``, ``backends``).
"""
