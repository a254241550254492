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

from agentmem.backends.sqltables import metadata
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


def create_missing(engine: Engine) -> None:
    """Create the archive tables the database lacks. Archives opened at once by several
    processes: one creates them, the others wait (SQLite's ``BEGIN IMMEDIATE``, a
    PostgreSQL advisory lock) and then find them; two concurrent ``CREATE TABLE`` of
    one name would fail. A database that has every table is only read."""
    with engine.connect() as conn:
        if not _missing(conn):
            return
        conn.rollback()
        if engine.dialect.name == "sqlite":
            conn.execution_options(agentmem_immediate=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            missing = _missing(conn)
            if missing:
                metadata.create_all(conn, tables=missing)


def _missing(conn: Connection) -> list[Any]:
    present = set(inspect(conn).get_table_names())
    return [t for t in metadata.sorted_tables if t.name not in present]


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
