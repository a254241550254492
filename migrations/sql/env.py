"""Alembic environment of the SQL archive schema, run by :mod:`agentmem.migrations.sql`.

The functions there build the Alembic configuration in code: online they pass
an open connection in ``config.attributes["connection"]`` (inside their
transaction), offline the database URL in ``config.attributes["url"]``. The
version table is ``agentmem_alembic_version``, beside AgentFarm's tables.
"""

from __future__ import annotations

from alembic import context

from agentmem.migrations.sql import VERSION_TABLE

config = context.config

if context.is_offline_mode():
    context.configure(url=config.attributes["url"], literal_binds=True,
                      version_table=VERSION_TABLE, render_as_batch=True)
else:
    context.configure(connection=config.attributes["connection"],
                      version_table=VERSION_TABLE, render_as_batch=True)

with context.begin_transaction():
    context.run_migrations()
