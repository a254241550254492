"""The Lua scripts the server runs, as values (name, source, SHA1).

May import: ``agentmem.errors``. Pure: no I/O.
"""
