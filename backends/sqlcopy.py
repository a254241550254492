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

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, processors
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


def _processors(table: Table, names: Sequence[str],
                conn: Connection) -> list[tuple[int, Callable[[Any], Any], bool]]:
    """``(position, bind processor, whether it is ``float()``)`` of the columns of ``names``
    whose type has a bind processor."""
    out: list[tuple[int, Callable[[Any], Any], bool]] = []
    for i, name in enumerate(names):
        proc = table.c[name].type.bind_processor(conn.dialect)
        if proc is not None:
            out.append((i, proc, proc is processors.to_float))
    return out


def _processed(table: Table, names: Sequence[str], conn: Connection,
               rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` with each value through its column's bind processor, as SQLAlchemy Core's
    ``INSERT`` sends it. A float column's processor is ``float()``, which returns an exact
    ``float`` itself: a row whose such values are all ``None`` or exact floats, and whose
    other processed columns (the embedding) are ``None``, is kept as it is."""
    procs = _processors(table, names, conn)
    if not procs:
        return list(rows)
    out = []
    for row in rows:
        for i, _, floats in procs:
            v = row[i]
            if v is not None and not (floats and type(v) is float):
                values = list(row)
                for j, p, _ in procs:
                    w = values[j]
                    if w is not None:
                        values[j] = p(w)
                row = tuple(values)
                break
        out.append(row)
    return out


def _copy(cur: Any, conn: Connection, table: Table, names: Sequence[str],
          rows: Sequence[tuple[Any, ...]], ids: Sequence[int]) -> None:
    """``COPY`` ``rows`` into ``names`` of ``table``, each with its id of ``ids`` last."""
    import psycopg  # only reached with the psycopg driver

    quote = conn.dialect.identifier_preparer
    sql = (f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) "
           "FROM STDIN")
    try:
        with cur.copy(sql) as copy:
            write = copy.write_row
            for row, key in zip(_processed(table, names[:-1], conn, rows), ids, strict=True):
                write((*row, key))
    except psycopg.Error as exc:  # as SQLAlchemy would raise it from an INSERT
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def copy_rows(conn: Connection, sequence: str, main: Table, main_names: Sequence[str],
              main_rows: Sequence[tuple[Any, ...]], side: Table, side_names: Sequence[str],
              side_rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert ``main_rows`` into ``main`` (``main_names`` then ``action_id``, taken from
    ``sequence`` in order) and ``side_rows`` with each main row's id appended (the
    last of ``side_names``); returns the ids, in the rows' order."""
    n = len(main_rows)
    ids: list[int] = sorted(conn.exec_driver_sql(  # one row: an array of the n new ids
        "SELECT array(SELECT nextval(%s) FROM generate_series(1, %s))",
        (sequence, n)).scalar_one())
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        _copy(cur, conn, main, (*main_names, "action_id"), main_rows, ids)
        _copy(cur, conn, side, side_names, side_rows, ids)
    return ids
