"""PostgreSQL's archive fast path (``backends/sqlcopy.py``, issue 19 item 6): rows sent
with ``COPY`` are the rows SQLAlchemy Core's ``INSERT`` stores, and a refused row
raises the same error and writes nothing. On a real PostgreSQL (skipped without one,
as ``test_sql_archive``), each test in schemas of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agentmem import Action
from agentmem.backends.sql import Archive, open_archive
from agentmem.backends.sqlwrite import pg_text_array
from agentmem.errors import BackendError
from tests.integration.test_sql_archive import _pg_base, make_actions


@pytest.fixture
def pg() -> Iterator[Callable[[], tuple[Archive, str]]]:
    """Open archives in fresh schemas: ``pg()`` -> (archive, schema)."""
    base, why = _pg_base()
    if base is None:
        pytest.skip(why)
    admin = create_engine(base)
    made: list[tuple[Archive, str]] = []

    def new() -> tuple[Archive, str]:
        schema = f"agentmem_test_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        made.append((open_archive(url.render_as_string(hide_password=False)), schema))
        return made[-1]

    yield new
    for archive, schema in made:
        archive.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _core(archive: Archive) -> Archive:
    """The archive with the ``COPY`` path off: SQLAlchemy Core's ``INSERT`` (the path
    of drivers other than psycopg 3)."""
    archive._seq = None
    return archive


def _tables(archive: Archive, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with archive.engine.connect() as conn:
        for table, key in (("simulations", "simulation_id"), ("agents", "agent_id"),
                           ("agent_actions", "action_id"),
                           ("agentmem_action_extras", "row_id")):
            out[table] = [tuple(r) for r in conn.execute(
                text(f'SELECT * FROM "{schema}".{table} ORDER BY {key}'))]
    return out


def test_copy_stores_the_rows_the_core_insert_stores(
        pg: Callable[[], tuple[Archive, str]]) -> None:
    (fast, s1), (core, s2) = pg(), pg()
    core = _core(core)
    acts = make_actions(700)
    for archive in (fast, core):
        assert archive.write(acts[:300]) == 300
        assert archive.write(acts[300:]) == 400
        assert archive.write(acts) == 0  # the same actions again: nothing inserted
    assert fast._seq is not None  # the COPY path ran
    a, b = _tables(fast, s1), _tables(core, s2)
    assert a["agent_actions"]
    assert a["agentmem_action_extras"]
    for table in a:
        rows_a, rows_b = a[table], b[table]
        if table == "simulations":  # the database path differs (its schema)
            rows_a = [r[:1] for r in rows_a]
            rows_b = [r[:1] for r in rows_b]
        assert rows_a == rows_b, table
    assert fast.read(acts[0].simulation_id) == core.read(acts[0].simulation_id)


def test_a_row_the_database_refuses_raises_the_same_error_and_writes_nothing(
        pg: Callable[[], tuple[Archive, str]]) -> None:
    (fast, s1), (core, s2) = pg(), pg()
    core = _core(core)
    acts = make_actions(50)
    errors = []
    for archive, schema in ((fast, s1), (core, s2)):
        with archive.engine.begin() as conn:
            conn.execute(text(f'ALTER TABLE "{schema}".agent_actions ADD CONSTRAINT '
                              f"no_attack CHECK (action_type <> 'attack')"))
        with pytest.raises(BackendError) as info:
            archive.write(acts)
        errors.append(type(info.value))
        assert archive.count() == 0
    assert errors[0] is errors[1]


def test_the_id_lookup_finds_ids_that_need_quoting(
        pg: Callable[[], tuple[Archive, str]]) -> None:
    """The lookup's arrays are sent as array literals (``pg_text_array``): ids with a
    quote, a backslash or a comma are found, so a second write inserts nothing."""
    archive, _ = pg()
    odd = ['a"b', "c\\d", "e,f", 'g\\"h', "é,\\\"", "NULL", "plain"]
    acts = [Action(agent_id=f"ag{n}{o}", simulation_id='s"1\\', step_number=n,
                   action_type="move", action_id=f"{o}.{n}", details={"o": o})
            for n, o in enumerate(odd)]
    assert archive.write(acts) == len(acts)
    assert archive.write(acts) == 0
    keys = {(a.simulation_id, a.agent_id, str(a.action_id)) for a in acts}
    assert archive.archived([*keys, ('s"1\\', 'ag0a"b', "x")]) == keys
    assert [a.action_id for a in archive.read('s"1\\')] == [a.action_id for a in acts]


@pytest.mark.parametrize("values", [[], [""], ["a", "b"], ['"', "\\", ",", "{}", " x "],
                                    ['a"b', "plain"], ["é\u2028", "NULL"]])
def test_pg_text_array_reads_back_as_the_list(
        pg: Callable[[], tuple[Archive, str]], values: list[str]) -> None:
    archive, _ = pg()
    with archive.engine.connect() as conn:
        got = conn.exec_driver_sql("SELECT %s::text[]", (pg_text_array(values),)).scalar()
    assert got == values
