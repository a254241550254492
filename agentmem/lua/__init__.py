"""The Lua scripts the server runs, as values (name, source, SHA1).

Each script is a ``.lua`` file under ``src/`` (package data) with a header that
states its KEYS, ARGV and reply; parts shared by several scripts are files under
``src/lib/`` pulled in by a ``--!include lib/<name>.lua`` line (see
:mod:`agentmem.lua.loader`, the one include mechanism). The modules of this
package (``scripts``, ``tiers``, ``integrity``, ``cluster``, ``search``,
``radius``, ``migrations``, ``dualwrite``) name the scripts for their callers.

May import: ``agentmem.errors``. Pure: reads its own package data, no I/O to servers.
"""
