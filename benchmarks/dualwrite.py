"""Dual-write against Redis-only ``add_many`` (issue 19, item 6), same run, same server.

    python -m benchmarks.dualwrite                     # SQLite and PostgreSQL
    python -m benchmarks.dualwrite --db sqlite --agents 100 --steps 200 --repeats 5

AgentFarm's shape: ``--agents`` agents act once per step (:func:`benchmarks.bench.
make_actions`), and each step's actions are written with one ``add_many`` (the
caller builds the :class:`~agentmem.Action` objects first, outside the timed region).
Per round and store, timed until everything is in Redis (and, for the writers, in
the archive: ``close()`` included):

- ``Redis-only add_many``: ``mem.actions.add_many(step)`` per step;
- ``DualWriter redis``: ``DualWriter(mem, archive)`` (durability ``redis``, the
  default), ``add_many(step)`` per step, then ``close()``;
- ``DualWriter buffered``: ``DualWriter(mem, archive, background=True)``, the same;
- ``DualWriter redis, Core INSERT`` (PostgreSQL only): the first, with the archive's
  ``COPY`` path off (SQLAlchemy Core's ``INSERT ... RETURNING``, the path before
  ``backends/sqlcopy.py`` and that of drivers other than psycopg 3).

Each round flushes the private Redis and uses a fresh archive (a new SQLite file; a
new PostgreSQL schema, ``AGENTMEM_BENCH_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), tables made before timing; the
stores' order rotates every round. Printed: median actions/s and the median of the
per-round ratios to ``Redis-only add_many``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import agentmem
from agentmem import Action
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer
from benchmarks.bench import make_actions

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def fresh_archive(db: str, tmp: str) -> Iterator[Archive]:
    """A new, empty archive of ``db`` (``sqlite`` or ``postgresql``), dropped afterwards."""
    if db == "sqlite":
        archive = open_archive(Path(tmp) / f"{uuid.uuid4().hex}.db")
        try:
            yield archive
        finally:
            archive.close()
        return
    base = os.environ.get("AGENTMEM_BENCH_PG_URL", PG_DEFAULT)
    schema = f"agentmem_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    archive = open_archive(url.render_as_string(hide_password=False))
    try:
        yield archive
    finally:
        archive.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _redis_only(mem: Any, steps: list[list[Action]], _archive: Archive | None) -> None:
    for step in steps:
        mem.actions.add_many(step)


def _writer(core: bool = False, **options: Any
            ) -> Callable[[Any, list[list[Action]], Archive | None], None]:
    def run(mem: Any, steps: list[list[Action]], archive: Archive | None) -> None:
        assert archive is not None
        if core:
            archive._seq = None  # PostgreSQL without COPY: SQLAlchemy Core's INSERT
        w = DualWriter(mem, archive, **options)
        for step in steps:
            w.add_many(step)
        w.close()
    return run


PATHS: dict[str, tuple[Callable[[Any, list[list[Action]], Archive | None], None], bool]] = {
    "Redis-only add_many": (_redis_only, False),
    "DualWriter redis": (_writer(), True),
    "DualWriter buffered": (_writer(background=True), True),
    "DualWriter redis, Core INSERT": (_writer(core=True), True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql"), nargs="+",
                    default=["sqlite", "postgresql"])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kind", choices=("redis", "valkey"), default="redis")
    args = ap.parse_args()
    rows = make_actions(args.agents, args.steps, seed=7)
    n = len(rows)
    names = ["Redis-only add_many"] + [f"{p} / {db}" for db in args.db for p in PATHS
                                       if PATHS[p][1] and (db == "postgresql" or "Core" not in p)]
    times: dict[str, list[float]] = {k: [] for k in names}
    ratios: dict[str, list[float]] = {k: [] for k in names}
    with LocalServer(args.kind) as srv, tempfile.TemporaryDirectory() as tmp:
        mem = agentmem.connect(srv.url, ttl=None)
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            got: dict[str, float] = {}
            for name in order:
                path, db = name.split(" / ") if " / " in name else (name, "")
                run, needs = PATHS[path]
                mem.runner.client.flushall()
                steps = [[Action(**d) for d in rows[i:i + args.agents]]
                         for i in range(0, n, args.agents)]
                with fresh_archive(db or "sqlite", tmp) as archive:
                    t = time.perf_counter()
                    run(mem, steps, archive if needs else None)
                    got[name] = time.perf_counter() - t
                    if needs:
                        assert archive.count(rows[0]["simulation_id"]) == n
            for name in names:
                times[name].append(got[name])
                ratios[name].append(got["Redis-only add_many"] / got[name])
        mem.close()
    print(f"{args.kind}: {n:,} actions, {args.agents} agents x {args.steps} steps, one "
          f"add_many per step, {args.repeats} rounds rotated; load {os.getloadavg()[0]:.2f}")
    print("| path | actions/s (median) | vs Redis-only add_many (median of rounds) |")
    print("|---|--:|--:|")
    for name in names:
        rate = n / statistics.median(times[name])
        print(f"| {name} | {rate:,.0f} | {statistics.median(ratios[name]):.2f}x |")


if __name__ == "__main__":
    main()
