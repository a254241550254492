"""Back to AgentFarm's own ``agent_actions``: the columns revision 0001 added go.

Revision ID: 0002
Revises: 0001

Revision 0001 gave ``agent_actions`` the columns of both AgentFarm generations.
Since then an archive's AgentFarm tables are exactly what AgentFarm's own
``create_all`` makes for its generation (``agentmem.backends.farmtables``), so
that AgentFarm's ORM and analysis code see their own schema. ``upgrade()``
drops the ``agent_actions`` columns and indexes that revision 0001 recorded as
added, keeping their values in the side table's ``extra_fields`` (where agentmem
reads them) and forgets them in 0001's log (dropping the log table when nothing
else is listed); ``downgrade()`` changes nothing. Tables 0001 created stay (and
0001's downgrade still drops them). An archive made by ``open_archive`` ends as
it was.

Offline (``sql=True``) there is nothing to inspect: the SQL assumes 0001 added
the four columns today's generation lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op
from sqlalchemy import MetaData, Table, delete, inspect, select
from sqlalchemy.engine import Connection

from agentmem.migrations.sql.versions import v0001_mirror_schema as v1

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _added_by_0001(conn: Connection | None) -> tuple[list[str], list[str]]:
    """The ``agent_actions`` columns and indexes revision 0001 recorded as added."""
    if conn is None:
        return list(v1.TODAY_LACKS), []
    if v1.LOG_TABLE not in inspect(conn).get_table_names():
        return [], []
    c = v1._log.c
    rows = conn.execute(select(c.kind, c.name).where(
        c.revision == v1.revision, c.table_name == "agent_actions")).all()
    columns = [str(n) for k, n in rows if k == "column"]
    indexes = [str(n) for k, n in rows if k == "index"]
    if ("table", "agent_actions") in {(str(k), str(n)) for k, n in rows}:
        # 0001 created the table itself (an empty database), with both generations'
        # columns: today's generation lacks these
        have = {c["name"] for c in inspect(conn).get_columns("agent_actions")}
        columns += [c for c in v1.TODAY_LACKS if c in have and c not in columns]
    return columns, indexes


def _side_table(conn: Connection | None) -> bool:
    return conn is None or v1.SIDE in inspect(conn).get_table_names()


def upgrade() -> None:
    conn = None if context.is_offline_mode() else op.get_bind()
    columns, indexes = _added_by_0001(conn)
    if not columns and not indexes:
        return
    if conn is not None and columns and _side_table(conn):
        v1._columns_to_extra_fields(conn, columns)
    for name in indexes:
        op.drop_index(name, table_name="agent_actions")
    if columns:
        # SQLite drops columns by copying the table (offline, from what 0001 left)
        copy_from = Table("agent_actions", MetaData(), *v1._agent_actions()) if conn is None \
            else None
        with op.batch_alter_table("agent_actions", copy_from=copy_from) as batch:
            for name in columns:
                batch.drop_column(name)
    c = v1._log.c
    op.execute(delete(v1._log).where(c.revision == v1.revision,
                                     c.table_name == "agent_actions",
                                     c.kind.in_(("column", "index"))))
    if conn is not None and conn.execute(select(c.revision).limit(1)).first() is None:
        op.drop_table(v1.LOG_TABLE)  # 0001 added nothing else: no trace left


def downgrade() -> None:
    """Nothing: the archive reads and writes ``agent_actions`` with or without the
    columns, and revision 0001's downgrade no longer lists them (their values stay in
    ``extra_fields``)."""
