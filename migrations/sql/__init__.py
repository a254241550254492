"""Alembic migrations of the SQL archive schema (installed as ``agentmem.migrations.sql``).

Revision ``0001`` gave an AgentFarm database's ``agent_actions`` the columns of both
generations; revision ``0002`` takes them away again, so that at the head the AgentFarm
tables are AgentFarm's own; see ``docs/migrations.md``. The Alembic configuration is
built in code (no ``alembic.ini``): :func:`upgrade`, :func:`downgrade`, :func:`stamp`,
:func:`current`, :func:`heads` and :func:`history` take a SQLAlchemy URL or a SQLite
path, as :func:`agentmem.backends.sql.open_archive` does. Alembic's version table is
``agentmem_alembic_version`` (:data:`VERSION_TABLE`), so it cannot clash with
AgentFarm's tables or another Alembic history.

On SQLite the migrations run on connections of their own, in one transaction
(``BEGIN IMMEDIATE``), with foreign keys off: batch mode copies
``agent_actions`` to drop columns, which SQLite refuses while other tables'
foreign keys are enforced.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from agentmem.backends.sqlengine import DEFAULT_FILE
from agentmem.backends.sqlrows import backend_error
from agentmem.errors import ConfigError

__all__ = [
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "Revision",
    "alembic_config",
    "current",
    "database_url",
    "downgrade",
    "heads",
    "history",
    "stamp",
    "upgrade",
]

VERSION_TABLE = "agentmem_alembic_version"
"""Alembic's version table in the archive (instead of the default ``alembic_version``)."""

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
"""The folder of ``env.py`` and ``versions/``: this package, wherever it is installed."""


@dataclass(frozen=True)
class Revision:
    """One revision of the archive schema, as :func:`history` lists it."""

    revision: str
    down_revision: str | None
    """The revision it follows; ``None`` for the first (``,``-joined for a merge)."""
    description: str
    """The first line of the revision's docstring."""
    is_head: bool


def database_url(url_or_path: str | os.PathLike[str] | None = None) -> URL:
    """The SQLAlchemy URL of ``url_or_path``, read as ``open_archive`` reads it.

    ``None`` is ``agentmem.db`` in the current directory, a path is a SQLite
    file, a string containing ``://`` is a SQLAlchemy URL.
    """
    target: str | os.PathLike[str] = DEFAULT_FILE if url_or_path is None else url_or_path
    if isinstance(target, str) and "://" in target:
        try:
            return make_url(target)
        except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is no number
            raise ConfigError(f"not a database URL: {exc}") from None
    return URL.create("sqlite", database=str(Path(target).resolve()))


def alembic_config(*, connection: Connection | None = None, url: URL | None = None,
                   output: io.StringIO | None = None) -> Config:
    """An Alembic ``Config`` for this package's ``env.py``, built in code.

    ``connection`` (online: migrations run on it, in its transaction) or
    ``url`` (offline: the dialect to render SQL for, into ``output``).
    """
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    cfg.attributes["url"] = url
    return cfg


def _sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _engine(url: URL, *, migrate: bool) -> Engine:
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"cannot use {url.render_as_string(hide_password=True)}: {exc}") \
            from exc
    if migrate and engine.dialect.name == "sqlite":
        # pysqlite opens transactions only before DML, so DDL would commit as it goes;
        # take the transaction (and the write lock) in hand. Foreign keys stay off.
        @event.listens_for(engine, "connect")
        def _no_implicit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _existing(url_or_path: str | os.PathLike[str] | None) -> URL:
    url = database_url(url_or_path)
    if _sqlite(url) and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        raise ConfigError(f"no SQLite database at {url.database}")
    return url


def _online(url: URL, run: Callable[[Config], None]) -> None:
    engine = _engine(url, migrate=True)
    try:
        with engine.begin() as conn:
            run(alembic_config(connection=conn))
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
    except CommandError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        engine.dispose()


def _offline(url: URL, run: Callable[[Config], None]) -> str:
    out = io.StringIO()
    try:
        run(alembic_config(url=url, output=out))
    except CommandError as exc:
        raise ConfigError(str(exc)) from None
    return out.getvalue()


def upgrade(url_or_path: str | os.PathLike[str] | None = None, revision: str = "head", *,
            sql: bool = False) -> str | None:
    """Upgrade the archive schema to ``revision`` (the latest by default).

    A SQLite file that does not exist is created (with the mirror's tables). At
    the target already, nothing happens. With ``sql=True`` nothing is run: the
    SQL is returned (Alembic's offline mode; revision ``0001`` then assumes an
    AgentFarm database of today's generation without the side table).
    """
    url = database_url(url_or_path)
    if sql:
        return _offline(url, lambda cfg: command.upgrade(cfg, revision, sql=True))
    _online(url, lambda cfg: command.upgrade(cfg, revision))
    return None


def downgrade(url_or_path: str | os.PathLike[str] | None, revision: str, *,
              sql: bool = False) -> str | None:
    """Downgrade the archive schema to ``revision`` (``"base"``: before ``0001``).

    With ``sql=True`` the SQL is returned instead; ``revision`` may then be
    ``"from:to"``, and is read as ``"<head>:revision"`` otherwise.
    """
    if sql:
        url = database_url(url_or_path)
        span = revision if ":" in revision else f"{heads()[0]}:{revision}"
        return _offline(url, lambda cfg: command.downgrade(cfg, span, sql=True))
    _online(_existing(url_or_path), lambda cfg: command.downgrade(cfg, revision))
    return None


def stamp(url_or_path: str | os.PathLike[str] | None, revision: str = "head") -> None:
    """Record ``revision`` as the archive's current one without running anything."""
    _online(_existing(url_or_path), lambda cfg: command.stamp(cfg, revision))


def current(url_or_path: str | os.PathLike[str] | None = None) -> str | None:
    """The archive's current revision, or ``None`` when it has none (never migrated)."""
    url = _existing(url_or_path)
    engine = _engine(url, migrate=False)
    try:
        with engine.connect() as conn:
            if VERSION_TABLE not in inspect(conn).get_table_names():
                return None
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    except SQLAlchemyError as exc:
        raise backend_error(exc) from exc
    finally:
        engine.dispose()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def heads() -> list[str]:
    """The latest revision(s) of the package (one unless history branches)."""
    return list(_scripts().get_heads())


def history() -> list[Revision]:
    """Every revision of the package, oldest first."""
    out = []
    for script in _scripts().walk_revisions():
        down = script.down_revision
        out.append(Revision(
            revision=script.revision,
            down_revision=down if down is None or isinstance(down, str) else ",".join(down),
            description=(script.doc or "").strip().splitlines()[0] if script.doc else "",
            is_head=script.is_head,
        ))
    return out[::-1]
