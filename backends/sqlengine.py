"""Opening the archive's database: URLs and paths, SQLite's settings (WAL, busy
timeout, foreign keys, ``BEGIN IMMEDIATE`` for writes) and a private new file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from agentmem.backends.farmtables import GENERATIONS, Generation
from agentmem.backends.sqltables import SCHEMAS
from agentmem.errors import BackendError, ConfigError

__all__ = ["DEFAULT_FILE", "SCHEMA_LOCK", "SQLITE_BUSY_TIMEOUT_MS", "check_file",
           "create_missing", "make_engine"]

SCHEMA_LOCK = 0x61676D656D  # "agmem"
"""The PostgreSQL advisory lock under which an archive's tables are created."""

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite connection waits for another writer's lock, in milliseconds."""

DEFAULT_FILE = "agentmem.db"


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
    # the driver issues no BEGIN of its own: _sqlite_begin does (SQLAlchemy's recipe)
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` for a write transaction (it takes the write lock first, so
    two writers never both read, then collide), a plain ``BEGIN`` otherwise."""
    immediate = conn.get_execution_options().get("agentmem_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


CORE_TABLES = ("simulations", "agents", "agent_actions", "agentmem_action_extras")
"""The tables an archive needs; a database that already has ``agent_actions`` gets only
those it lacks (``every=False``), so AgentFarm's own database changes by the side table."""


def create_missing(engine: Engine, generation: Generation | None = None, *,
                   every: bool = False) -> Generation:
    """Create the archive tables the database lacks; return the database's AgentFarm
    generation (:mod:`~agentmem.backends.farmtables`).

    ``generation``: the one a new archive gets (default ``"current"``); a database
    that already has ``agent_actions`` keeps its own, and asking for another raises
    ``ConfigError``. A new database gets every table of the generation; one that has
    ``agent_actions`` only the missing :data:`CORE_TABLES`, unless ``every``.
    Archives opened at once by several processes: one creates the
    tables, the others wait (SQLite's ``BEGIN IMMEDIATE``, a PostgreSQL advisory
    lock) and then find them; two concurrent ``CREATE TABLE`` of one name would fail.
    A database that has every table is only read."""
    with engine.connect() as conn:
        found = _generation(conn, generation)
        if not _missing(conn, found, every):
            return found
        conn.rollback()
        if engine.dialect.name == "sqlite":
            conn.execution_options(agentmem_immediate=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            found = _generation(conn, generation)
            missing = _missing(conn, found, every)
            if missing:
                SCHEMAS[found].create_all(conn, tables=missing)
        return found


def _generation(conn: Connection, wanted: Generation | None) -> Generation:
    """The generation of the database's ``agent_actions`` (``wanted`` when it has none)."""
    if wanted is not None and wanted not in GENERATIONS:
        raise ConfigError(f"unknown AgentFarm schema generation {wanted!r}: "
                          f"one of {', '.join(GENERATIONS)}")
    inspector = inspect(conn)
    if not inspector.has_table("agent_actions"):
        return wanted or GENERATIONS[0]
    columns = {c["name"] for c in inspector.get_columns("agent_actions")}
    # the original generation's own table (SQL revision 0001 may have added module_type
    # to its agent_actions, never this table)
    found: Generation = "original" if inspector.has_table("learning_experiences") or (
        "state_before_id" in columns and "module_type" not in columns) else "current"
    if wanted is not None and wanted != found:
        raise ConfigError(f"the database's agent_actions is of AgentFarm's {found!r} "
                          f"generation, not {wanted!r}")
    return found


def _missing(conn: Connection, generation: Generation, every: bool) -> list[Any]:
    present = set(inspect(conn).get_table_names())
    wanted = every or "agent_actions" not in present
    return [t for t in SCHEMAS[generation].sorted_tables
            if t.name not in present and (wanted or t.name in CORE_TABLES)]


def _create_private(path: Path) -> None:
    """Create a missing SQLite file readable and writable by its owner only."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the archive file {path}: {exc.strerror}") from None
    os.close(fd)


def _file_of(url: URL) -> Path | None:
    """The file of a SQLite URL (``None``: another database, or SQLite in memory)."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not str(url.database).startswith("file:"):
        return Path(str(url.database))
    return None


def _location(url: URL) -> str:
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(url.database)
    return url.render_as_string(hide_password=True)


def make_engine(url_or_path: str | os.PathLike[str] | None = None
                ) -> tuple[Engine, str, Path | None]:
    """The engine of ``url_or_path`` (see :func:`~agentmem.backends.sql.open_archive`),
    where it is (for messages and ``simulation_db_path``), and its SQLite file if any."""
    target: str | os.PathLike[str] = DEFAULT_FILE if url_or_path is None else url_or_path
    if isinstance(target, str) and "://" in target:
        try:
            url = make_url(target)
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"not a database URL: {exc}") from None
    else:
        url = URL.create("sqlite", database=str(Path(target).resolve()))
    path = _file_of(url)
    if path is not None:
        _create_private(path)
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"cannot use {url.render_as_string(hide_password=True)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine, _location(url), path




def check_file(path: Path, ident: tuple[int, int]) -> None:
    """Refuse to write into a SQLite file that was deleted or replaced since it was
    opened (``ident``: its device and inode then): the connections would write into
    the old file, lost with it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BackendError(
            f"the archive file {path} was deleted while open; nothing was written "
            "(open the archive again to create a new one)") from None
    if (st.st_dev, st.st_ino) != ident:
        raise BackendError(
            f"the archive file {path} was replaced while open; nothing was written "
            "(open the archive again to use the new file)")
