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
- ``DualWriter redis, send_many``: the first with ``send_many(step)``: each step's write
  sent ahead, its reply read by the next step's call (the server runs it meanwhile);
- ``DualWriter redis, archive_thread``: ``DualWriter(mem, archive, archive_thread=True)``:
  the Redis writes on the caller's thread, the due archive writes in a thread of their
  own, the same;
- ``DualWriter redis, Core INSERT`` (PostgreSQL only): the first, with the archive's
  ``COPY`` path off (SQLAlchemy Core's ``INSERT ... RETURNING``, the path before
  ``backends/sqlcopy.py`` and that of drivers other than psycopg 3);
- ``probe: the outbox drained by a second process``: the Redis writes with their outbox
  entries (what ``DualWriter`` redis mode sends) in this process, while a second process,
  started before timing, runs the loop of ``agentmem archive --follow --all`` (``drain``
  of every outbox, every 2 ms), timed until the archive has every action: the archive's
  Python off this interpreter;
- ``probe: add_many, Archive.write in a thread``: not a floor but the lever: Redis-only
  ``add_many`` per step, each 1,000 stored copies it returns handed to a second thread
  that runs ``Archive.write`` (no outbox, failover or error handling: not a DualWriter),
  timed until both are done; the overlap an archiver thread beside the writer could get.

The floor of the archive, no Redis call in the timed region (the rows are the copies
Redis stored, with their final ids and write times, made once before the first round by
an untimed ``add_many`` pass, exactly what ``DualWriter`` archives):

- ``alone: Archive.write`` (both databases): what ``DualWriter`` calls, batched as it
  batches (the steps' actions buffered, one ``Archive.write`` per ``buffer_size`` =
  1,000 of them);
- ``raw executemany`` (SQLite): the same rows pre-built as tuples (the archive's own
  preparation, done before timing), per 1,000 rows one ``BEGIN IMMEDIATE`` transaction
  of two ``executemany`` (row ids given) into the same tables: SQLite's own cost;
- ``raw COPY text`` / ``raw COPY binary``: the same rows pre-built as tuples (the
  archive's own preparation, done before timing), per 1,000 rows one transaction of one
  ``nextval`` query and two ``COPY`` (psycopg 3, text or binary format) into the same
  tables with the same constraints: the database's own cost with nothing of agentmem's;
- ``raw COPY binary, no FKs/indexes``: that, after dropping every foreign key, unique
  constraint and secondary index of ``agent_actions`` and the side table (primary keys
  kept). **Not a valid archive** (nothing stops a duplicate): it only attributes the cost.

Each round flushes the private Redis and uses a fresh archive (a new SQLite file; a
new PostgreSQL schema, ``AGENTMEM_BENCH_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), tables made before timing; the
stores' order rotates every round. Printed: median actions/s, the median of the
per-round ratios to ``Redis-only add_many``, and the CPU per action of the client
process (all its threads), of the Redis server (``INFO cpu``) and of the local
PostgreSQL server (every process of the ``postgres`` user, from ``/proc``; ``-`` when
the server is not on this machine), then the bounds those figures put on a dual write.
"""

from __future__ import annotations

import argparse
import os
import pwd
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import agentmem
from agentmem import Action
from agentmem.backends.sql import Archive, action_extras, agent_actions, open_archive
from agentmem.backends.sqlcopy import _processed
from agentmem.backends.sqlwrite import SIDE_COLUMNS, prepare_batch
from agentmem.config import DEFAULT_BUFFER_SIZE
from agentmem.dualwrite.outbox import Outbox
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


@dataclass
class Case:
    """One path's inputs in one round."""

    mem: Any
    steps: list[list[Action]]  # new Action objects, one list per step
    stored: list[list[Action]]  # the copies Redis stored, per step (what DualWriter archives)
    archive: Archive
    raw: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = field(default_factory=list)
    types: tuple[list[int], list[int]] = ([], [])  # the columns' type oids (binary COPY)
    seq: str = ""  # agent_actions' id sequence
    url: str = ""  # the Redis server's
    child: Any = None  # the draining process of the worker probe


def _redis_only(case: Case) -> None:
    for step in case.steps:
        case.mem.actions.add_many(step)


def _writer(core: bool = False, ahead: bool = False, columns: bool = False, **options: Any
            ) -> Callable[[Case], None]:
    def run(case: Case) -> None:
        if core:
            case.archive._seq = None  # PostgreSQL without COPY: SQLAlchemy Core's INSERT
        # columns: the writes as columns (``write_columns=True``), on a store of its own
        mem = agentmem.connect(case.url, ttl=None, write_columns=True) if columns \
            else case.mem
        w = DualWriter(mem, case.archive, **options)
        write = w.send_many if ahead else w.add_many
        for step in case.steps:
            write(step)
        w.close()
        if columns:
            mem.close()
    return run


def _alone(case: Case) -> None:
    """The archive's own write path, batched as DualWriter batches it, no Redis."""
    buffer: list[Action] = []
    for step in case.stored:
        buffer.extend(step)
        if len(buffer) >= DEFAULT_BUFFER_SIZE:
            case.archive.write(buffer)
            buffer = []
    if buffer:
        case.archive.write(buffer)


def _overlap(case: Case) -> None:
    """Redis ``add_many`` per step in this thread, each 1,000 stored copies handed to an
    archiver thread (``Archive.write``): the overlap an archiver thread could give, with
    none of DualWriter's outbox, failover or error handling."""
    todo: queue.Queue[list[Action] | None] = queue.Queue()
    failed: list[BaseException] = []

    def archiver() -> None:
        while (batch := todo.get()) is not None:
            try:
                case.archive.write(batch)
            except BaseException as exc:  # raised by the caller
                failed.append(exc)

    thread = threading.Thread(target=archiver)
    thread.start()
    buffer: list[Action] = []
    for step in case.steps:
        buffer.extend(case.mem.actions.add_many(step))
        if len(buffer) >= DEFAULT_BUFFER_SIZE:
            todo.put(buffer)
            buffer = []
    if buffer:
        todo.put(buffer)
    todo.put(None)
    thread.join()
    if failed:
        raise failed[0]


def _prebuild(bare: bool = False) -> Callable[[Case], None]:
    """Before timing: the archive's own rows of every 1,000 stored actions, processed as
    ``sqlcopy`` processes them; the type oids of the columns; ``bare``: drop every
    foreign key, unique constraint and secondary index of the two tables."""
    def prepare(case: Case) -> None:
        ar = case.archive
        flat = [a for step in case.stored for a in step]
        with ar.engine.begin() as conn:
            for i in range(0, len(flat), DEFAULT_BUFFER_SIZE):
                batch = prepare_batch(
                    flat[i:i + DEFAULT_BUFFER_SIZE], set(), stored={},
                    main_values=ar._main_values, has_details=ar._has_details,
                    extra_names=ar._extra_names, fk_target=ar._fk_target,
                    split=ar._split_details)
                case.raw.append((_processed(agent_actions, ar._main_columns, conn, batch.main),
                                 _processed(action_extras, SIDE_COLUMNS[:-1], conn, batch.side)))
            seq = ar._sequence(conn)
            assert seq is not None
            case.seq = seq
            case.types = (_oids(conn, "agent_actions", (*ar._main_columns, "action_id")),
                          _oids(conn, "agentmem_action_extras", SIDE_COLUMNS))
            if bare:
                for table, name in conn.exec_driver_sql(
                        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                        "WHERE connamespace = current_schema()::regnamespace "
                        "AND contype IN ('f', 'u') ORDER BY contype").all():
                    conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                for (index,) in conn.exec_driver_sql(
                        "SELECT i.indexrelid::regclass::text FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indrelid "
                        "WHERE c.relnamespace = current_schema()::regnamespace "
                        "AND c.relname IN ('agent_actions', 'agentmem_action_extras') "
                        "AND NOT i.indisprimary").all():
                    conn.exec_driver_sql(f"DROP INDEX {index}")
    return prepare


def _prebuild_sqlite(case: Case) -> None:
    """Before timing: the archive's own rows of every 1,000 stored actions (SQLite)."""
    ar = case.archive
    flat = [a for step in case.stored for a in step]
    for i in range(0, len(flat), DEFAULT_BUFFER_SIZE):
        batch = prepare_batch(
            flat[i:i + DEFAULT_BUFFER_SIZE], set(), stored={}, main_values=ar._main_values,
            has_details=ar._has_details, extra_names=ar._extra_names,
            fk_target=ar._fk_target, split=ar._split_details)
        case.raw.append((batch.main, batch.side))


def _raw_executemany(case: Case) -> None:
    """Pre-built rows into the archive's tables (SQLite): per 1,000 rows one ``BEGIN
    IMMEDIATE`` transaction of two ``executemany`` with the row ids given; the parent rows
    first, in the first one."""
    ar = case.archive
    sims = sorted({a.simulation_id for step in case.stored for a in step})
    agents = sorted({a.agent_id: a.simulation_id for step in case.stored for a in step}
                    .items())
    raw = ar.engine.raw_connection()
    try:
        db = raw.driver_connection
        assert db is not None
        db.isolation_level = None  # the transactions below are explicit
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO simulations (simulation_id, status, parameters, "
                       "simulation_db_path) VALUES (?, 'pending', '{}', ?)",
                       [(s, ar.location[:255]) for s in sims])
        db.executemany("INSERT INTO agents (agent_id, simulation_id) VALUES (?, ?)", agents)
        db.execute("COMMIT")
        key = 1
        for main, side in case.raw:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(ar._sql_main_keyed,
                           [(*row, key + n) for n, row in enumerate(main)])
            db.executemany(ar._sql_side, [(*row, key + n) for n, row in enumerate(side)])
            db.execute("COMMIT")
            key += len(main)
    finally:
        raw.close()


def _oids(conn: Any, table: str, names: tuple[str, ...]) -> list[int]:
    got = dict(conn.exec_driver_sql(
        "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped", (table,)).all())
    return [got[n] for n in names]


def _raw_copy(binary: bool) -> Callable[[Case], None]:
    """Pre-built rows into the archive's tables: per 1,000 rows one transaction of one
    ``nextval`` query and two ``COPY``; the parent rows first, in the first one."""
    def run(case: Case) -> None:
        ar = case.archive
        first = case.stored[0][0]
        sims = sorted({a.simulation_id for step in case.stored for a in step})
        agents = sorted({a.agent_id: a.simulation_id for step in case.stored for a in step}
                        .items())
        main_cols = ", ".join((*ar._main_columns, "action_id"))
        fmt = " (FORMAT BINARY)" if binary else ""
        raw = ar.engine.raw_connection()
        try:
            pg = raw.driver_connection
            assert pg is not None
            with pg.transaction(), pg.cursor() as cur:
                cur.executemany("INSERT INTO simulations (simulation_id, status, parameters, "
                                "simulation_db_path) VALUES (%s, 'pending', '{}', %s)",
                                [(s, ar.location[:255]) for s in sims])
                cur.executemany("INSERT INTO agents (agent_id, simulation_id) VALUES (%s, %s)",
                                agents)
            assert first.simulation_id in sims
            for main, side in case.raw:
                with pg.transaction(), pg.cursor() as cur:
                    ids = [k for (k,) in cur.execute(
                        "SELECT nextval(%s) FROM generate_series(1, %s)", (case.seq, len(main)))]
                    with cur.copy(f"COPY agent_actions ({main_cols}) FROM STDIN{fmt}") as cp:
                        if binary:
                            cp.set_types(case.types[0])
                        for row, key in zip(main, ids, strict=True):
                            cp.write_row((*row, key))
                    with cur.copy(f"COPY agentmem_action_extras ({', '.join(SIDE_COLUMNS)}) "
                                  f"FROM STDIN{fmt}") as cp:
                        if binary:
                            cp.set_types(case.types[1])
                        for row, key in zip(side, ids, strict=True):
                            cp.write_row((*row, key))
        finally:
            raw.close()
    return run


DRAINER = r"""
import sys, time
import agentmem
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.outbox import drain
url, db, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
mem, archive = agentmem.connect(url, ttl=None), open_archive(db)
print("ready", flush=True)
sys.stdin.readline()
done = 0
while done < n:  # the loop of ``agentmem archive --follow --all``, every 2 ms
    report = drain(mem, archive, include_live=True)
    done += report.archived
    if report.read == 0:
        time.sleep(0.002)
print(done, flush=True)
"""


def _start_drainer(case: Case) -> None:
    n = sum(len(step) for step in case.steps)
    db = case.archive.engine.url.render_as_string(hide_password=False)
    case.child = subprocess.Popen([sys.executable, "-c", DRAINER, case.url, db, str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert case.child.stdout.readline().strip() == "ready"


def _worker_process(case: Case) -> None:
    """Redis writes with their outbox entries, as ``DualWriter`` redis mode writes them,
    in this process; a second process drains the outbox into the archive meanwhile
    (``agentmem archive --follow --all``'s loop); timed until the archive has all."""
    outbox = Outbox(case.mem)
    child = case.child
    child.stdin.write("go\n")
    child.stdin.flush()
    for step in case.steps:
        outbox.actions.add_many(step)
    child.stdout.readline()
    child.wait()
    outbox.release()


@dataclass
class PathSpec:
    run: Callable[[Case], None]
    dbs: tuple[str, ...] = ("sqlite", "postgresql")  # () : no archive (Redis only)
    prepare: Callable[[Case], None] | None = None  # before timing, on the fresh archive
    redis: bool = True  # writes to Redis (the floor paths do not)


PATHS: dict[str, PathSpec] = {
    "Redis-only add_many": PathSpec(_redis_only, ()),
    "DualWriter redis": PathSpec(_writer()),
    "DualWriter buffered": PathSpec(_writer(background=True)),
    "DualWriter redis, archive_thread": PathSpec(_writer(archive_thread=True)),
    "DualWriter redis, send_many": PathSpec(_writer(ahead=True)),
    "DualWriter redis, send_many, archive_thread":
        PathSpec(_writer(ahead=True, archive_thread=True)),
    "DualWriter redis, archive_thread, columns":
        PathSpec(_writer(columns=True, archive_thread=True)),
    "DualWriter redis, send_many, archive_thread, columns":
        PathSpec(_writer(ahead=True, columns=True, archive_thread=True)),
    "DualWriter redis, Core INSERT": PathSpec(_writer(core=True), ("postgresql",)),
    "probe: the outbox drained by a second process (not a DualWriter)":
        PathSpec(_worker_process, prepare=_start_drainer),
    "probe: add_many, Archive.write in a thread (not a DualWriter)":
        PathSpec(_overlap, ("postgresql",)),
    "alone: Archive.write": PathSpec(_alone, redis=False),
    "raw executemany": PathSpec(_raw_executemany, ("sqlite",), _prebuild_sqlite, redis=False),
    "raw COPY text": PathSpec(_raw_copy(False), ("postgresql",), _prebuild(), redis=False),
    "raw COPY binary": PathSpec(_raw_copy(True), ("postgresql",), _prebuild(), redis=False),
    "raw COPY binary, no FKs/indexes (not a valid archive)":
        PathSpec(_raw_copy(True), ("postgresql",), _prebuild(bare=True), redis=False),
}


def _postgres_cpu() -> float | None:
    """CPU seconds of every process of the local ``postgres`` user (None: no such user)."""
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _redis_cpu(mem: Any) -> float:
    info = mem.runner.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql"), nargs="+",
                    default=["sqlite", "postgresql"])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kind", choices=("redis", "valkey"), default="redis")
    ap.add_argument("--paths", nargs="+", metavar="PREFIX",
                    help="only the paths whose name starts with one of these (and Redis-only "
                         "add_many, the baseline)")
    args = ap.parse_args()
    rows = make_actions(args.agents, args.steps, seed=7)
    n = len(rows)
    local_pg = make_url(os.environ.get("AGENTMEM_BENCH_PG_URL", PG_DEFAULT)).host in (
        "127.0.0.1", "localhost", "::1", None)
    names = ["Redis-only add_many"] + [
        f"{p} / {db}" for db in args.db for p in PATHS if db in PATHS[p].dbs
        and (not args.paths or any(p.startswith(x) for x in args.paths))]
    times: dict[str, list[float]] = {k: [] for k in names}
    ratios: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[tuple[float, float, float | None]]] = {k: [] for k in names}
    load = os.getloadavg()[0]
    with LocalServer(args.kind) as srv, tempfile.TemporaryDirectory() as tmp:
        mem = agentmem.connect(srv.url, ttl=None)
        mem.runner.client.flushall()  # the copies Redis stores, as DualWriter archives them
        stored = [mem.actions.add_many([Action(**d) for d in rows[i:i + args.agents]])
                  for i in range(0, n, args.agents)]
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            got: dict[str, float] = {}
            for name in order:
                path, db = name.split(" / ") if " / " in name else (name, "")
                spec = PATHS[path]
                mem.runner.client.flushall()
                steps = [[Action(**d) for d in rows[i:i + args.agents]]
                         for i in range(0, n, args.agents)]
                with fresh_archive(db or "sqlite", tmp) as archive:
                    case = Case(mem, steps, stored, archive, url=srv.url)
                    if spec.prepare is not None:
                        spec.prepare(case)
                    pg0 = _postgres_cpu() if db == "postgresql" and local_pg else None
                    rc0, c0 = _redis_cpu(mem), time.process_time()
                    t = time.perf_counter()
                    spec.run(case)
                    got[name] = time.perf_counter() - t
                    c1, rc1 = time.process_time(), _redis_cpu(mem)
                    pg1 = _postgres_cpu() if pg0 is not None else None
                    cpu[name].append((c1 - c0, rc1 - rc0,
                                      None if pg0 is None or pg1 is None else pg1 - pg0))
                    if spec.dbs:
                        assert archive.count(rows[0]["simulation_id"]) == n
                    assert (mem.runner.client.dbsize() > n) == spec.redis
            for name in names:
                times[name].append(got[name])
                ratios[name].append(got["Redis-only add_many"] / got[name])
        mem.close()
    print(f"{args.kind}: {n:,} actions, {args.agents} agents x {args.steps} steps, one "
          f"add_many per step, {args.repeats} rounds rotated; load {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")
    print("| path | actions/s (median) | vs Redis-only add_many (median of rounds) "
          "| client CPU µs/action | Redis CPU µs/action | PostgreSQL CPU µs/action |")
    print("|---|--:|--:|--:|--:|--:|")
    med: dict[str, tuple[float, float, float | None]] = {}
    for name in names:
        rate = n / statistics.median(times[name])
        c = statistics.median(x[0] for x in cpu[name]) / n * 1e6
        rc = statistics.median(x[1] for x in cpu[name]) / n * 1e6
        pgs = [x[2] for x in cpu[name] if x[2] is not None]
        pg = statistics.median(pgs) / n * 1e6 if pgs else None
        med[name] = (c, rc, pg)
        print(f"| {name} | {rate:,.0f} | {statistics.median(ratios[name]):.2f}x | {c:.1f} | "
              f"{rc:.1f} | {'-' if pg is None else f'{pg:.1f}'} |")
    _bounds(names, times, ratios, med, n)


def _bounds(names: list[str], times: dict[str, list[float]], ratios: dict[str, list[float]],
            med: dict[str, tuple[float, float, float | None]], n: int) -> None:
    """What the floor rows allow a dual write that has everything in both at close."""
    alone = "alone: Archive.write / postgresql"
    if alone not in names or med[alone][2] is None:
        return
    redis_wall = statistics.median(times["Redis-only add_many"]) / n * 1e6
    c_r, s_r, _ = med["Redis-only add_many"]
    c_a, _, pg_a = med[alone]
    assert pg_a is not None
    cores = os.cpu_count() or 1
    work = c_r + s_r + c_a + pg_a  # CPU that a dual write must spend, wherever it runs
    one_client = c_r + c_a  # one Python process: its threads share the GIL
    best = max(redis_wall, work / cores, one_client)
    print(f"\nbounds (µs per action): Redis-only wall {redis_wall:.1f}; archive alone wall "
          f"{statistics.median(times[alone]) / n * 1e6:.1f}; CPU a dual write needs "
          f"{work:.1f} (client {c_r:.1f} + {c_a:.1f}, Redis {s_r:.1f}, PostgreSQL "
          f"{pg_a:.1f}) / {cores} CPUs = {work / cores:.1f}; one client process "
          f"{one_client:.1f}; serial (Redis, then the archive) "
          f"{redis_wall + statistics.median(times[alone]) / n * 1e6:.1f}")
    probe = "probe: add_many, Archive.write in a thread (not a DualWriter) / postgresql"
    measured = f"; measured with a thread: {statistics.median(ratios[probe]):.2f}x" \
        if probe in names else ""
    print(f"best dual write with both complete at close: {redis_wall / best:.2f}x of "
          f"Redis-only add_many if the CPUs were free and the overlap perfect; serial: "
          f"{1 / (1 + 1 / statistics.median(ratios[alone])):.2f}x{measured}")


if __name__ == "__main__":
    main()
