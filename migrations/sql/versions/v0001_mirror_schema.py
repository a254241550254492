"""AgentFarm's database up to agentmem's mirror schema.

Revision ID: 0001
Revises: (none: the first revision)

``upgrade()`` inspects the database and adds what agentmem's mirror schema
(``agentmem.backends.sql``) has and the database lacks:

- the tables ``simulations``, ``agents``, ``agent_actions`` and
  ``agentmem_action_extras`` (on an AgentFarm database only the side table);
- the optional ``agent_actions`` columns: on today's generation
  ``state_before_id``, ``state_after_id``, ``resources_before`` and
  ``resources_after``; on the old generation ``module_type`` and ``module_id``;
- the four ``idx_agent_actions_*`` indexes.

What it added is listed in the table ``agentmem_migration_log`` (created only
when something was added), so that ``downgrade()`` drops exactly that and
nothing of what was there before. Values the side table kept in
``extra_fields`` for a column that did not exist move into the new column; on
downgrade, values of a dropped column move back into ``extra_fields`` when the
side table stays.

The schema below is frozen as it was when this revision was written; later
changes to ``agentmem.backends.sql`` belong in later revisions.

Offline (``sql=True``) there is nothing to inspect: the SQL assumes an
AgentFarm database of today's generation without the side table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from alembic import context, op
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    inspect,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeEngine

from agentmem.errors import BackendError

revision = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("agentmem.migrations")

LOG_TABLE = "agentmem_migration_log"
SIDE = "agentmem_action_extras"
REQUIRED = ("action_id", "simulation_id", "step_number", "agent_id", "action_type")
TODAY_LACKS = ("state_before_id", "state_after_id", "resources_before", "resources_after")
"""The columns today's AgentFarm ``agent_actions`` lacks (what offline SQL adds)."""


def _real() -> TypeEngine[float]:
    # as agentmem.backends.sql: AgentFarm's Float(precision=6), DOUBLE on PostgreSQL
    return Float(precision=6).with_variant(Double(), "postgresql")


_OPTIONAL: dict[str, Callable[[], TypeEngine[Any]]] = {
    "action_target_id": lambda: String(64),
    "state_before_id": lambda: String(128),
    "state_after_id": lambda: String(128),
    "resources_before": _real,
    "resources_after": _real,
    "reward": _real,
    "details": lambda: String(1024),
    "module_type": lambda: String(50),
    "module_id": lambda: String(64),
}
"""The optional ``agent_actions`` columns of the mirror (all nullable), in table order."""

_INDEXES = {
    "idx_agent_actions_step_number": "step_number",
    "idx_agent_actions_agent_id": "agent_id",
    "idx_agent_actions_action_type": "action_type",
    "idx_agent_actions_module_type": "module_type",
}


def _optional_column(name: str) -> Column[Any]:
    return Column(name, _OPTIONAL[name](), nullable=True)


def _simulations() -> list[SchemaItem]:
    return [
        Column("simulation_id", String(64), primary_key=True),
        Column("experiment_id", String(64), nullable=True),
        Column("start_time", DateTime, nullable=True),
        Column("end_time", DateTime, nullable=True),
        Column("status", String(50), nullable=True),
        Column("parameters", JSON, nullable=False),
        Column("results_summary", JSON, nullable=True),
        Column("simulation_db_path", String(255), nullable=False),
    ]


def _agents() -> list[SchemaItem]:
    return [
        Column("agent_id", String(64), primary_key=True),
        Column("simulation_id", String(64), ForeignKey("simulations.simulation_id"),
               nullable=True),
        Column("birth_time", Integer, nullable=True),
        Column("death_time", Integer, nullable=True),
        Column("agent_type", String(50), nullable=True),
        Column("position_x", _real(), nullable=True),
        Column("position_y", _real(), nullable=True),
        Column("initial_resources", _real(), nullable=True),
        Column("starting_health", _real(), nullable=True),
        Column("genome_id", String(64), nullable=True),
        Column("generation", Integer, nullable=True),
        Column("action_weights", JSON, nullable=True),
    ]


def _agent_actions() -> list[SchemaItem]:
    return [
        Column("action_id", Integer, primary_key=True, autoincrement=True),
        Column("simulation_id", String(64), ForeignKey("simulations.simulation_id"),
               nullable=True),
        Column("step_number", Integer, nullable=False),
        Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False),
        Column("action_type", String(20), nullable=False),
        *[_optional_column(name) for name in _OPTIONAL],
        *[Index(name, column) for name, column in _INDEXES.items()],
    ]


def _action_extras() -> list[SchemaItem]:
    return [
        Column("row_id", Integer, ForeignKey("agent_actions.action_id"), primary_key=True,
               autoincrement=False),
        Column("simulation_id", String(64), nullable=False),
        Column("agent_id", String(64), nullable=False),
        Column("action_id", String(128), nullable=False),
        Column("position_x", Double(), nullable=True),
        Column("position_y", Double(), nullable=True),
        Column("embedding", LargeBinary, nullable=True),
        Column("stored_at", BigInteger, nullable=True),
        Column("details_full", Text, nullable=True),
        Column("extra_fields", Text, nullable=True),
        UniqueConstraint("simulation_id", "agent_id", "action_id",
                         name="uq_agentmem_action_extras_action"),
    ]


_TABLES: dict[str, Callable[[], list[SchemaItem]]] = {
    "simulations": _simulations,
    "agents": _agents,
    "agent_actions": _agent_actions,
    SIDE: _action_extras,
}
"""The mirror's tables in creation order (parents first)."""


def _log_items() -> list[SchemaItem]:
    return [
        Column("revision", String(32), nullable=False),
        Column("kind", String(16), nullable=False),  # table, column or index
        Column("table_name", String(64), nullable=False),
        Column("name", String(64), nullable=False),
        PrimaryKeyConstraint("revision", "kind", "table_name", "name"),
    ]


_meta = MetaData()
_log = Table(LOG_TABLE, _meta, *_log_items())
_actions_view = Table("agent_actions", _meta, *_agent_actions())
_side_view = Table(SIDE, _meta, *_action_extras())

Change = tuple[str, str, str]
"""``(kind, table_name, name)``: one thing this revision added."""


def _offline() -> bool:
    return context.is_offline_mode()


# -- upgrade -----------------------------------------------------------------------------


def _planned_additions(conn: Connection | None) -> list[Change]:
    """What the database lacks of the mirror (today's generation assumed offline)."""
    if conn is None:
        return ([("table", SIDE, SIDE)]
                + [("column", "agent_actions", c) for c in TODAY_LACKS])
    insp = inspect(conn)
    present = set(insp.get_table_names())
    changes: list[Change] = [("table", t, t) for t in _TABLES if t not in present]
    if "agent_actions" in present:
        have = {c["name"] for c in insp.get_columns("agent_actions")}
        lacking = [c for c in REQUIRED if c not in have]
        if lacking:
            raise BackendError("the database's agent_actions table is not AgentFarm's: "
                               "it lacks " + ", ".join(lacking))
        changes += [("column", "agent_actions", c) for c in _OPTIONAL if c not in have]
        indexes = {i["name"] for i in insp.get_indexes("agent_actions")}
        changes += [("index", "agent_actions", name) for name in _INDEXES
                    if name not in indexes]
    return changes


def upgrade() -> None:
    conn = None if _offline() else op.get_bind()
    changes = _planned_additions(conn)
    if not changes:
        return  # the mirror schema already (e.g. made by open_archive): nothing to add
    side_existed = ("table", SIDE, SIDE) not in changes
    added_columns = [name for kind, _, name in changes if kind == "column"]
    for kind, table, name in changes:
        if kind == "table":
            op.create_table(name, *_TABLES[name]())
        elif kind == "column":
            op.add_column(table, _optional_column(name))
        else:
            op.create_index(name, table, [_INDEXES[name]])
    if conn is not None and side_existed and added_columns:
        _extra_fields_to_columns(conn, added_columns)
    if conn is None or LOG_TABLE not in inspect(conn).get_table_names():
        op.create_table(LOG_TABLE, *_log_items())
    op.bulk_insert(_log, [{"revision": revision, "kind": kind, "table_name": table,
                           "name": name} for kind, table, name in changes])


def _extra_fields_to_columns(conn: Connection, columns: Sequence[str]) -> None:
    """Move values kept in the side table's ``extra_fields`` into the new ``columns``."""
    x, a = _side_view.c, _actions_view.c
    wanted = set(columns)
    main: list[dict[str, Any]] = []
    side: list[dict[str, Any]] = []
    for row_id, text in conn.execute(select(x.row_id, x.extra_fields)
                                     .where(x.extra_fields.is_not(None))):
        extra = json.loads(text)
        if not isinstance(extra, dict) or not wanted & extra.keys():
            continue
        main.append({"_row": row_id, **{f"_v_{c}": extra.pop(c, None) for c in columns}})
        side.append({"_row": row_id, "_extra": json.dumps(extra, separators=(",", ":"))
                     if extra else None})
    if main:
        conn.execute(_actions_view.update().where(a.action_id == bindparam("_row"))
                     .values({c: bindparam(f"_v_{c}") for c in columns}), main)
        conn.execute(_side_view.update().where(x.row_id == bindparam("_row"))
                     .values(extra_fields=bindparam("_extra")), side)


# -- downgrade ---------------------------------------------------------------------------


def _recorded_additions(conn: Connection | None) -> tuple[list[Change], bool]:
    """What upgrade added, and whether the log table exists (offline: assumed)."""
    if conn is None:
        return _planned_additions(None), True
    if LOG_TABLE not in inspect(conn).get_table_names():
        return [], False
    c = _log.c
    rows = conn.execute(select(c.kind, c.table_name, c.name)
                        .where(c.revision == revision)).all()
    return [(str(k), str(t), str(n)) for k, t, n in rows], True


def downgrade() -> None:
    conn = None if _offline() else op.get_bind()
    changes, logged = _recorded_additions(conn)
    tables = [name for kind, _, name in changes if kind == "table"]
    columns = [name for name in _OPTIONAL if ("column", "agent_actions", name) in changes]
    indexes = [name for kind, _, name in changes if kind == "index"]
    if conn is not None and columns and SIDE not in tables:
        _columns_to_extra_fields(conn, columns)
    for name in indexes:
        if "agent_actions" not in tables:
            op.drop_index(name, table_name="agent_actions")
    for name in reversed(_TABLES):  # the side table first: it references agent_actions
        if name in tables:
            op.drop_table(name)
    if columns and "agent_actions" not in tables:
        # SQLite cannot drop these columns in place: batch mode copies the table
        # (offline, from the definition of what upgrade left: the mirror's table)
        copy_from = Table("agent_actions", MetaData(), *_agent_actions()) if conn is None \
            else None
        with op.batch_alter_table("agent_actions", copy_from=copy_from) as batch:
            for name in columns:
                batch.drop_column(name)
    if logged:
        op.drop_table(LOG_TABLE)


def _columns_to_extra_fields(conn: Connection, columns: Sequence[str]) -> None:
    """Keep the values of ``columns`` (about to be dropped) in ``extra_fields``."""
    x, a = _side_view.c, _actions_view.c
    cols = [a[c] for c in columns]
    rows = conn.execute(
        select(a.action_id, x.row_id, x.extra_fields, *cols)
        .select_from(_actions_view.outerjoin(_side_view, x.row_id == a.action_id))
        .where(or_(*[col.is_not(None) for col in cols]))).all()
    updates: list[dict[str, Any]] = []
    lost = 0
    for action_id, row_id, text, *values in rows:
        if row_id is None:
            lost += 1
            continue
        extra = json.loads(text) if text else {}
        extra.update({c: v for c, v in zip(columns, values, strict=True) if v is not None})
        updates.append({"_row": action_id,
                        "_extra": json.dumps(extra, separators=(",", ":"))})
    if updates:
        conn.execute(_side_view.update().where(x.row_id == bindparam("_row"))
                     .values(extra_fields=bindparam("_extra")), updates)
    if lost:
        log.warning("%d agent_actions rows without an agentmem side row lose their values of "
                    "%s", lost, ", ".join(columns))
