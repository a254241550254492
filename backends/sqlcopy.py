"""PostgreSQL's archive fast path: the rows of a write sent with ``COPY ... FROM STDIN``.

With the psycopg 3 driver and an ``agent_actions.action_id`` backed by a sequence
(``SERIAL``/identity, as ``create_all`` makes it), :func:`copy_rows` takes the row
ids of a batch from that sequence in one query, then sends the ``agent_actions`` rows
(with those ids) and the side rows with ``COPY``, in the caller's transaction. Each
value goes through the column type's SQLAlchemy bind processor first, as the
``INSERT`` of SQLAlchemy Core does, so the stored rows are the same. A database
error is raised as SQLAlchemy's (``IntegrityError``, ``DataError``, …), so the
archive's retries and error mapping apply unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["copy_rows", "serial_sequence"]


def serial_sequence(conn: Connection, table: Table, column: str) -> str | None:
    """The sequence behind ``table.column`` on PostgreSQL with psycopg 3, else None
    (another driver, or a column without a sequence)."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return None
    name = conn.dialect.identifier_preparer.format_table(table)
    seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence(%s, %s)",
                               (name, column)).scalar()
    return None if seq is None else str(seq)


def _processed(table: Table, names: Sequence[str], conn: Connection,
               rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    procs = [table.c[n].type.bind_processor(conn.dialect) for n in names]
    if not any(procs):
        return list(rows)
    return [tuple(v if p is None or v is None else p(v)
                  for p, v in zip(procs, row, strict=True)) for row in rows]


def _copy(cur: Any, conn: Connection, table: Table, names: Sequence[str],
          rows: Sequence[tuple[Any, ...]]) -> None:
    import psycopg  # only reached with the psycopg driver

    quote = conn.dialect.identifier_preparer
    sql = (f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) "
           "FROM STDIN")
    try:
        with cur.copy(sql) as copy:
            for row in _processed(table, names, conn, rows):
                copy.write_row(row)
    except psycopg.Error as exc:  # as SQLAlchemy would raise it from an INSERT
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def copy_rows(conn: Connection, sequence: str, main: Table, main_names: Sequence[str],
              main_rows: Sequence[tuple[Any, ...]], side: Table, side_names: Sequence[str],
              side_rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert ``main_rows`` into ``main`` (``main_names`` then ``action_id``, taken from
    ``sequence`` in order) and ``side_rows`` with each main row's id appended (the
    last of ``side_names``); returns the ids, in the rows' order."""
    n = len(main_rows)
    ids = sorted(int(k) for k in conn.exec_driver_sql(
        "SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, n)).scalars())
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        _copy(cur, conn, main, (*main_names, "action_id"),
              [(*row, key) for row, key in zip(main_rows, ids, strict=True)])
        _copy(cur, conn, side, side_names,
              [(*row, key) for row, key in zip(side_rows, ids, strict=True)])
    return ids
