"""The archive's row building without a database (``backends/sqlwrite.py``,
``backends/sqlcopy.py``; issue 19 item 6): the ``extra_fields`` text is exactly
``json.dumps``'s, and the bind processing of ``COPY`` rows gives the values SQLAlchemy's
processors give."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine

from agentmem.backends.sqlcopy import _processed
from agentmem.backends.sqltables import action_extras, agent_actions
from agentmem.backends.sqlwrite import SIDE_COLUMNS, extra_text

NAMES = ("state_before_id", "state_after_id", "resources_before", "resources_after",
         "module_type")
KEYS = tuple((n, f'"{n}":') for n in NAMES)
VALUES: list[Any] = [
    None, 1.5, -0.0, 0.1 + 0.2, 1e300, 5e-324, 1e16, 123456789.123, float("nan"),
    float("inf"), -float("inf"), 3, True, 2**70, np.float64(2.5), np.float32(0.1),
    "x", "", 'q"uote\\back', "é☃\u2028\x00\n\t", "\ud800", "agent_7-3-move.1",
]


def test_extra_text_is_json_dumps_text() -> None:
    rnd = random.Random(19)
    for _ in range(20_000):
        d = {n: rnd.choice(VALUES) for n in NAMES}
        present = {n: d[n] for n in NAMES if d[n] is not None}
        try:
            want: Any = json.dumps(present, separators=(",", ":")) if present else None
        except TypeError as exc:  # np.float32: refused by both, with the same error
            want = repr(exc)
        try:
            got: Any = extra_text(d, KEYS)
        except TypeError as exc:
            got = repr(exc)
        assert got == want, d


def test_extra_text_refuses_what_json_dumps_refuses() -> None:
    d = dict.fromkeys(NAMES)
    d["resources_before"] = {1, 2}
    with pytest.raises(TypeError):
        extra_text(d, KEYS)


class _Conn:
    def __init__(self, url: str) -> None:
        self.dialect = create_engine(url).dialect


@pytest.mark.parametrize("url", ["postgresql+psycopg://", "sqlite://"])
def test_processed_rows_are_sqlalchemys(url: str) -> None:
    conn: Any = _Conn(url)
    rnd = random.Random(6)
    floats: list[Any] = [None, 1.5, 2, True, np.float64(0.25), -0.0]
    blobs: list[Any] = [None, b"\x00\x01", np.zeros(2, dtype="<f4").tobytes()]
    for table, names in ((agent_actions, ("simulation_id", "step_number", "reward",
                                          "resources_before", "details")),
                         (action_extras, SIDE_COLUMNS[:-1])):
        procs = [table.c[n].type.bind_processor(conn.dialect) for n in names]
        rows = []
        for _ in range(500):
            row = []
            for n in names:
                col = table.c[n].type.python_type if n != "embedding" else bytes
                row.append(rnd.choice(floats) if col is float
                           else rnd.choice(blobs) if col is bytes
                           else rnd.choice([None, "s", 4]))
            rows.append(tuple(row))
        want = [tuple(v if p is None or v is None else p(v)
                      for p, v in zip(procs, row, strict=True)) for row in rows]
        got = _processed(table, names, conn, rows)
        assert _plain(got) == _plain(want)


def _plain(rows: list[tuple[Any, ...]]) -> list[list[tuple[str, Any]]]:
    """Each value with its type (a driver's ``Binary`` wrapper by its bytes)."""
    return [[(type(v).__name__, getattr(v, "obj", v)) for v in row] for row in rows]
