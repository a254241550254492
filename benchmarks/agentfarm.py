"""agentmem's AgentFarm drop-in against AgentFarm's own ``DataLogger``, in one run.

    python -m benchmarks.agentfarm --agentfarm PATH [--n 5000] [--rounds 3] [--json out.json]
    python -m benchmarks.agentfarm --agentfarm PATH --identity
    python -m benchmarks.agentfarm                  # agentmem rows only

``PATH`` is a checkout of AgentFarm (github Dooders/AgentFarm) that the user
provides; this script imports ``farm`` from it (``sys.path``) and copies none of
its code. Run it with a Python that has AgentFarm's dependencies installed and
agentmem importable. Not part of the test suite.

Benchmark (the default mode). 100 agents x ``N/100`` steps of AgentFarm-shaped
``log_agent_action`` calls (move / gather / attack / share / defend with the
details dicts of ``farm/core/action.py``, int resource ids and str agent ids
as ``action_target_id``, and 5% decision-module rows with ``module_type``,
``module_id`` (int or str), ``action_taken`` and ``action_taken_mapped``),
``flush_if_needed()`` once per step, as AgentFarm's simulation loop does. Rows:

  AgentFarm DataLogger   ``SimulationDatabase(fresh file).logger``; the simulation
                         record and the agents (``log_agents_batch``) are written
                         before the timed region, as AgentFarm does
  drop-in buffered       ``AgentFarmLogger(mem, open_archive(fresh file), sim)``
  drop-in buffered, send_ahead=False
                         the same waiting for each step's Redis write (the default sends
                         it ahead: its reply is read by the next flush, so the server
                         runs it meanwhile)
  drop-in buffered, archive_thread=True
                         the same with the archive writes in a thread of their own
  drop-in background     the same with ``background=True``
  drop-in redis          ``durability="redis"`` (each call stored in Redis)
  drop-in buffered, write_columns=True
                         buffered over a store opened with ``write_columns=True``
                         (``connect``'s option): each step's Redis write sent as
                         columns (``core/write_cols.lua``), not as rows
  drop-in, write_columns, archive_thread
                         the same with ``archive_thread=True``
  floor: lua_batch       the reference ``lua_batch`` path of ``../shared/bench/
                         limits.py`` (Redis only, batches of 500; skipped when absent)

Per-call cost = wall time of all ``log_agent_action`` and ``flush_if_needed``
calls plus the final ``flush_all_buffers()`` (AgentFarm) or ``close()`` (drop-in),
divided by N. After each run the counts are checked: the SQLite file holds N
``agent_actions`` rows and, for the drop-in, Redis holds N actions. Redis CPU =
the server's ``INFO cpu`` ``used_cpu_sys + used_cpu_user`` delta over the timed
region divided by N; client CPU = this process's ``time.process_time()`` over the
same region (threads included; less sensitive than wall time to other work on the
machine). Every path runs once per round (order rotated per round,
after one untimed warm-up round of 1,000 calls); the table shows medians.

Identity (``--identity``). The same sequence of calls (agents, batches,
actions with int / str / None targets and module ids, nested details, steps,
resources, health incidents, flushes) goes to AgentFarm's logger on one SQLite
file and to the drop-in on another, in the generation of the given checkout
(``current`` when its ``agent_actions`` has ``module_type``, else
``original``). Then every AgentFarm table's rows (all columns except integer
autoincrement keys and wall-clock stamps, in insertion order) and the schema
(``sqlite_master`` SQL of AgentFarm's tables and their indexes) are compared.
A call that succeeds on one side and raises on the other is a difference too.
It runs twice: the drop-in on its archive alone, then with ``database=`` an
AgentFarm ``SimulationDatabase`` on the drop-in's file (the rows other than
actions written in that database's transactions). Exit status 1 on any
difference.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import importlib
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
from pathlib import Path
from types import ModuleType
from typing import Any

import redis
import sqlalchemy as sa

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem.integrations.agentfarm import AgentFarmLogger

REPO = Path(__file__).resolve().parents[1]
LIMITS_PY = REPO.parent / "shared" / "bench" / "limits.py"
SIM = "sim_bench"
AGENTS = 100
DEFAULT_URL = "redis://127.0.0.1:6379/11"

# -- AgentFarm --------------------------------------------------------------


def load_agentfarm(path: str) -> ModuleType:
    """``farm.database.database`` from the user's AgentFarm checkout at ``path``."""
    root = Path(path).resolve()
    if not (root / "farm" / "database" / "data_logging.py").is_file():
        raise SystemExit(f"{root} is not an AgentFarm checkout (no farm/database/data_logging.py)")
    sys.path.insert(0, str(root))
    with contextlib.redirect_stdout(sys.stderr):
        return importlib.import_module("farm.database.database")


def farm_generation(fdb: ModuleType) -> str:
    models = importlib.import_module("farm.database.models")
    return "current" if "module_type" in models.ActionModel.__table__.c else "original"


def _git(where: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "(not a git work tree)"
    return out + (" (modified)" if dirty else "")


# -- workload ---------------------------------------------------------------


def agent_ids() -> list[str]:
    return [f"agent_{i:04d}" for i in range(AGENTS)]


def agent_batch(simulation_id: str) -> list[dict[str, Any]]:
    rng = random.Random(2)
    return [{"simulation_id": simulation_id, "agent_id": a, "birth_time": 0,
             "agent_type": ("SystemAgent", "IndependentAgent", "ControlAgent")[i % 3],
             "position": (rng.uniform(0, 100), rng.uniform(0, 100)),
             "initial_resources": 10.0, "starting_health": 100.0,
             "starvation_threshold": 100, "genome_id": f"genome:{i}", "generation": 0,
             "action_weights": {"move": 0.4, "gather": 0.3, "attack": 0.1, "share": 0.1,
                                "defend": 0.1}}
            for i, a in enumerate(agent_ids())]


def _pos(rng: random.Random) -> tuple[float, float]:
    return (round(rng.uniform(0, 100), 3), round(rng.uniform(0, 100), 3))


def make_steps(n: int, seed: int = 1) -> list[list[dict[str, Any]]]:
    """``n`` ``log_agent_action`` keyword sets, 100 agents per step."""
    rng = random.Random(seed)
    agents = agent_ids()
    steps: list[list[dict[str, Any]]] = []
    for i in range(n):
        step, agent = divmod(i, AGENTS)
        if agent == 0:
            steps.append([])
        me = agents[agent]
        other = agents[rng.randrange(AGENTS)]
        r = rng.random()
        kw: dict[str, Any] = {"step_number": step, "agent_id": me,
                              "reward": round(rng.uniform(-1, 1), 4)}
        if r < 0.05:  # a decision module's row (farm/core/decision/decision.py)
            idx = rng.randrange(5)
            name = ("move", "gather", "attack", "share", "defend")[idx]
            kw.update(action_type=name, module_type="dqn",
                      module_id=140_000_000_000 + agent if agent % 2 else f"dqn-{agent}",
                      action_taken=idx, action_taken_mapped=name)
        elif r < 0.50:
            old, new = _pos(rng), _pos(rng)
            d = round(rng.uniform(0, 2), 3)
            kw.update(action_type="move", details={
                "old_position": old, "new_position": new, "distance": d,
                "direction": (1, 0), "movement_vector": (d, 0.0), "position_changed": True})
        elif r < 0.75:
            res = rng.randrange(1000)
            kw.update(action_type="gather", action_target_id=res, details={
                "amount_gathered": 1.5, "resource_before": 10.0, "resource_after": 8.5,
                "agent_resources_before": 4.0, "agent_resources_after": 5.5,
                "distance": round(rng.uniform(0, 5), 3), "gathering_range": 30,
                "resource_id": res, "resource_depleted": False})
        elif r < 0.85:
            kw.update(action_type="attack", action_target_id=other, details={
                "damage_dealt": 3.0, "target_id": other, "distance": 1.2,
                "attack_range": 20.0, "target_position": _pos(rng),
                "attacker_position": _pos(rng), "attack_direction": (0.6, 0.8),
                "target_defending": False, "target_alive": True})
        elif r < 0.95:
            kw.update(action_type="share", action_target_id=other, details={
                "amount_shared": 1.0, "agent_resources_before": 6.0,
                "agent_resources_after": 5.0, "target_resources_before": 2.0,
                "target_resources_after": 3.0, "target_id": other, "share_range": 30.0,
                "reward_earned": 0.1})
        else:
            kw.update(action_type="defend", details={})
        steps[-1].append(kw)
    return steps


# -- runs -------------------------------------------------------------------


def server_cpu(admin: redis.Redis) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def redis_count(mem: Any, simulation_id: str) -> int:
    return int(sum(mem.actions.type_counts(simulation_id).values()))


def sqlite_count(path: Path, simulation_id: str) -> int:
    eng = sa.create_engine(f"sqlite:///{path}")
    try:
        with eng.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM agent_actions WHERE simulation_id = :s"),
                {"s": simulation_id}).scalar_one())
    finally:
        eng.dispose()


def run_agentfarm(fdb: ModuleType, steps: list[list[dict[str, Any]]], tmp: Path,
                  instrument: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """AgentFarm's own ``DataLogger`` on a fresh SQLite file; ``instrument(logger)`` is
    called before timing (``benchmarks.agentfarm_floor`` times its bulk insert)."""
    with contextlib.redirect_stdout(sys.stderr):  # AgentFarm's log lines
        return _run_agentfarm(fdb, steps, tmp, instrument)


def _run_agentfarm(fdb: ModuleType, steps: list[list[dict[str, Any]]], tmp: Path,
                   instrument: Callable[[Any], None] | None) -> dict[str, Any]:
    path = tmp / "agentfarm.db"
    db = fdb.SimulationDatabase(str(path), simulation_id=SIM)
    db.add_simulation_record(SIM, dt.datetime.now(dt.UTC), "running", {})
    logger = db.logger
    logger.log_agents_batch(agent_batch(SIM))
    if instrument is not None:
        instrument(logger)
    log, tick = logger.log_agent_action, logger.flush_if_needed
    t0, c0 = time.perf_counter(), time.process_time()
    for calls in steps:
        for kw in calls:
            log(**kw)
        tick()
    logger.flush_all_buffers()
    elapsed, client = time.perf_counter() - t0, time.process_time() - c0
    db.close()
    n = sum(len(s) for s in steps)
    return {"seconds": elapsed, "n": n, "archive_rows": sqlite_count(path, SIM),
            "redis_actions": None, "redis_cpu_s": None, "client_cpu_s": client}


def run_dropin(mode: str, mem: Any, admin: redis.Redis, steps: list[list[dict[str, Any]]],
               tmp: Path) -> dict[str, Any]:
    admin.flushdb()
    path = tmp / f"dropin-{mode}.db"
    archive = agentmem.open_archive(path)
    _insert_simulation(archive.engine)  # AgentFarm's add_simulation_record, untimed
    options: dict[str, Any] = {"buffered": {}, "background": {"background": True},
                               "redis": {"durability": "redis"},
                               "thread": {"archive_thread": True},
                               "waiting": {"send_ahead": False},
                               "columns": {},
                               "columns_thread": {"archive_thread": True}}[mode]
    logger = AgentFarmLogger(mem, archive, SIM, **options)
    logger.log_agents_batch(agent_batch(SIM))
    log, tick = logger.log_agent_action, logger.flush_if_needed
    cpu0 = server_cpu(admin)
    t0, c0 = time.perf_counter(), time.process_time()
    for calls in steps:
        for kw in calls:
            log(**kw)
        tick()
    logger.close()
    elapsed, client = time.perf_counter() - t0, time.process_time() - c0
    cpu = server_cpu(admin) - cpu0
    n = sum(len(s) for s in steps)
    rows = archive.count(SIM)
    archive.close()
    return {"seconds": elapsed, "n": n, "archive_rows": rows,
            "redis_actions": redis_count(mem, SIM), "redis_cpu_s": cpu,
            "client_cpu_s": client}


def load_limits() -> ModuleType | None:
    if not LIMITS_PY.is_file():
        return None
    spec = importlib.util.spec_from_file_location("agentmem_bench_limits", LIMITS_PY)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_floor(limits: ModuleType, admin: redis.Redis, n: int) -> dict[str, Any]:
    actions = limits.make_actions(n)
    cpu0, c0 = server_cpu(admin), time.process_time()
    seconds, _, _ = limits.run_redis(admin, "lua_batch", actions, 500)  # flushes the db first
    client = time.process_time() - c0  # the FLUSHDB and the script load included
    cpu = server_cpu(admin) - cpu0
    keys = admin.dbsize()
    admin.flushdb()
    return {"seconds": seconds, "n": n, "archive_rows": None, "redis_actions": None,
            "redis_keys": keys, "redis_cpu_s": cpu, "client_cpu_s": client}


ROWS = {
    "agentfarm": "AgentFarm DataLogger (SQLite)",
    "buffered": "drop-in buffered (default: sent ahead)",
    "thread": "drop-in buffered, archive_thread=True",
    "waiting": "drop-in buffered, send_ahead=False",
    "background": "drop-in background=True",
    "redis": "drop-in durability='redis'",
    "columns": "drop-in buffered, write_columns=True",
    "columns_thread": "drop-in, write_columns, archive_thread",
    "floor": "floor: lua_batch (limits.py, Redis only)",
}


def benchmark(args: argparse.Namespace) -> int:
    fdb = load_agentfarm(args.agentfarm) if args.agentfarm else None
    if fdb is None:
        print("AgentFarm was not given (--agentfarm PATH): agentmem rows only.")
    limits = load_limits()
    admin = redis.Redis.from_url(args.url)
    mem = agentmem.connect(args.url)
    # the Redis writes sent as columns (connect's write_columns=True): a dual writer's
    # writes of 32 records or more, each step's here
    cols = agentmem.connect(args.url, write_columns=True)
    admin.flushdb()
    steps = make_steps(args.n)
    warm = make_steps(min(args.n, 1000), seed=3)
    paths: list[tuple[str, Callable[[list[list[dict[str, Any]]], Path], dict[str, Any]]]] = []
    if fdb is not None:
        paths.append(("agentfarm", lambda s, t: run_agentfarm(fdb, s, t)))
    for mode in ("buffered", "waiting", "thread", "background", "redis"):
        paths.append((mode, lambda s, t, m=mode: run_dropin(m, mem, admin, s, t)))
    for mode in ("columns", "columns_thread"):
        paths.append((mode, lambda s, t, m=mode: run_dropin(m, cols, admin, s, t)))
    if limits is not None:
        paths.append(("floor", lambda s, t: run_floor(
            limits, admin, sum(len(x) for x in s))))
    else:
        print(f"note: {LIMITS_PY} not found; floor row skipped")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in paths}
    problems: list[str] = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="afbench-") as tmpdir:
        for rnd in range(-1, args.rounds):
            order = paths[rnd % len(paths):] + paths[:rnd % len(paths)] if rnd >= 0 else paths
            for name, fn in order:
                where = Path(tmpdir) / f"r{rnd + 1}-{name}"
                where.mkdir()
                res = fn(warm if rnd < 0 else steps, where)
                if rnd < 0:
                    continue
                results[name].append(res)
                n = res["n"]
                for what in ("archive_rows", "redis_actions"):
                    if res[what] is not None and res[what] != n:
                        problems.append(f"round {rnd + 1} {name}: {what} = {res[what]}, "
                                        f"expected {n}")
    admin.flushdb()
    load1 = os.getloadavg()[0]
    summary = summarize(results)
    out = {
        "n": args.n, "rounds": args.rounds, "agents": AGENTS, "redis_url": args.url,
        "agentfarm": {"path": args.agentfarm, "git": _git(Path(args.agentfarm))}
        if args.agentfarm else None,
        "agentmem_git": _git(REPO), "agentmem_file": agentmem.__file__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "redis_server": admin.info("server").get("redis_version"),
                    "load_before": load0, "load_after": load1},
        "rounds_raw": results, "summary": summary, "problems": problems,
    }
    print(render(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if problems else 0


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    base = results.get("agentfarm")
    for name, runs in results.items():
        us = [r["seconds"] / r["n"] * 1e6 for r in runs]
        row: dict[str, Any] = {"us_per_call": us, "median_us": statistics.median(us),
                               "min_us": min(us), "max_us": max(us)}
        cpu = [r["redis_cpu_s"] / r["n"] * 1e6 for r in runs if r["redis_cpu_s"] is not None]
        row["redis_cpu_us"] = statistics.median(cpu) if cpu else None
        mine = [r["client_cpu_s"] / r["n"] * 1e6 for r in runs if "client_cpu_s" in r]
        row["client_cpu_us"] = statistics.median(mine) if mine else None
        if base:
            b = [r["seconds"] / r["n"] * 1e6 for r in base]
            row["ratio"] = row["median_us"] / statistics.median(b)
            row["ratio_per_round_median"] = statistics.median(
                x / y for x, y in zip(us, b, strict=True))
        summary[name] = row
    return summary


def render(out: dict[str, Any]) -> str:
    af = out["agentfarm"]
    lines = [f"AgentFarm drop-in benchmark: {out['n']} calls ({AGENTS} agents x "
             f"{out['n'] // AGENTS} steps), {out['rounds']} rounds, medians; Redis "
             f"{out['machine']['redis_server']} at {out['redis_url']}; "
             f"{out['machine']['cpus']} CPUs, load {out['machine']['load_before']:.2f} -> "
             f"{out['machine']['load_after']:.2f}",
             f"agentmem {out['agentmem_git']} ({out['agentmem_file']}); "
             + (f"AgentFarm {af['git']} ({af['path']})" if af else "AgentFarm not given"),
             "",
             f"{'path':42} {'us/call':>8} {'min..max':>13} {'x AgentFarm':>11} "
             f"{'(per-round)':>11} {'client CPU us':>13} {'Redis CPU us/act':>16}",
             "-" * 120]
    for name, row in out["summary"].items():
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "-"
        per = f"{row['ratio_per_round_median']:.2f}x" if "ratio" in row else "-"
        cpu = f"{row['redis_cpu_us']:.1f}" if row["redis_cpu_us"] is not None else "-"
        mine = f"{row['client_cpu_us']:.1f}" if row.get("client_cpu_us") is not None else "-"
        lines.append(f"{ROWS[name]:42} {row['median_us']:8.1f} "
                     f"{row['min_us']:6.1f}..{row['max_us']:<6.1f} {ratio:>11} {per:>11} "
                     f"{mine:>13} {cpu:>16}")
    lines.append("")
    counts = []
    for name, runs in out["rounds_raw"].items():
        r = runs[-1]
        if r["archive_rows"] is not None:
            counts.append(f"{name}: archive {r['archive_rows']}"
                          + (f", Redis {r['redis_actions']}" if r["redis_actions"] is not None
                             else ""))
    lines.append("complete at close (last round): " + "; ".join(counts))
    lines.append("problems: " + ("; ".join(out["problems"]) if out["problems"] else "none"))
    return "\n".join(lines)


# -- identity ---------------------------------------------------------------

START = dt.datetime(2026, 1, 2, 3, 4, 5)


def identity_calls(gen: str) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """``(method, args, kwargs)``: the same sequence for both loggers."""
    cur = gen == "current"
    starve: dict[str, Any] = {} if cur else {"starvation_threshold": 50}
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("log_agent", (), dict(agent_id="a1", birth_time=0, agent_type="SystemAgent",
                               position=(1.0, 2.0), initial_resources=10.0,
                               starting_health=100.0, **starve)),
        ("log_agent", (), dict(agent_id="a2", birth_time=0, agent_type="IndependentAgent",
                               position=(3.5, 4.25), initial_resources=8.0,
                               starting_health=90.0, genome_id="g:1", generation=1,
                               action_weights={"move": 0.4, "gather": 0.6}, **starve)),
        ("log_agents_batch", ([
            {"simulation_id": SIM, "agent_id": "a3", "birth_time": 1,
             "agent_type": "ControlAgent", "position": (0.0, 0.5), "initial_resources": 5,
             "starting_health": 80.0, **starve},
            {"simulation_id": SIM, "agent_id": "42", "birth_time": 1,
             "agent_type": "SystemAgent", "position": (9, 9), "initial_resources": 5.5,
             "starting_health": 80.0, "genome_id": "g:2", "generation": 2,
             "action_weights": {"attack": 1.0}, **starve},
            {"simulation_id": SIM, "agent_id": "a5", "birth_time": 2,
             "agent_type": "SystemAgent", "position": [7.0, 8.0], "initial_resources": 1.0,
             "starting_health": 10.0, "action_weights": "move:1", **starve},
        ],), {}),
        ("log_resource", (), {"resource_id": "r1" if cur else 1, "initial_amount": 20.0,
                                  "position": (5.0, 6.0)}),
        ("log_resource", (), {"resource_id": 7, "initial_amount": 3.5, "position": (0, 1)}),
    ]
    # int target: a resource id in the current generation; an agent ("42") in the
    # original one, whose action_target_id references agents
    int_target = 7 if cur else 42
    nested = {"old_position": (1.0, 2.0), "new_position": [2.0, 2.0],
              "meta": {"path": [[1, 2], (2, 2)], "ok": True, "none": None, "x": 0.1 + 0.2,
                       "msg": "h\u00e9llo \u2713", "deep": {"a": {"b": [1, {"c": "d"}]}}}}
    extra: dict[str, Any] = ({} if cur else
                             {"resources_before": 10.0, "resources_after": 9.25})

    def act(step: int, agent: str, kind: Any, **kw: Any) -> tuple[str, tuple[Any, ...],
                                                              dict[str, Any]]:
        return ("log_agent_action", (), dict(step_number=step, agent_id=agent,
                                             action_type=kind, **kw))

    for step in (0, 1):
        calls += [
            act(step, "a1", "move", reward=0.5, details=nested, **extra),
            act(step, "a2", "gather", action_target_id=int_target, reward=1.25,
                details={"amount_gathered": 1.5, "resource_id": int_target}),
            act(step, "a3", "attack", action_target_id="a1", reward=-0.5,
                details={"damage_dealt": 3.0, "target_position": (1.0, 2.0)}, **extra),
            act(step, "a1", "share", action_target_id="a2"),
            act(step, "a2", "defend", details={}),
            act(step, "42", 5, reward=0.0),
            act(step, "a5", "move", action_target_id=None, reward=1e-7,
                details={"big": list(range(50))}),
        ]
        if cur:
            calls += [
                act(step, "a2", "move", module_type="dqn", module_id=140_000_000_001,
                    reward=0.25, action_taken=3, action_taken_mapped="move"),
                act(step, "a3", "defend", module_type="ppo", module_id="mod-3",
                    details={"x": 1}, action_taken=0),
                act(step, "a1", "gather", action_target_id="r1", module_type="dqn",
                    module_id=0, action_taken_mapped="gather"),
            ]
        calls += [
            ("log_health_incident", (), {"step_number": step, "agent_id": "a1",
                                             "health_before": 100.0, "health_after": 90.0,
                                             "cause": "attack",
                                             "details": {"attacker": "a3", "damage": 10.0}}),
            ("log_health_incident", (), {"step_number": step, "agent_id": "a2",
                                             "health_before": 90, "health_after": 95,
                                             "cause": "heal"}),
        ]
        if cur:
            calls.append(("flush_if_needed", (), {}))
        metrics: dict[str, Any] = {"total_agents": 5, "total_resources": 23.5,
                                   "average_agent_resources": 6.1, "births": step,
                                   "deaths": 0, "average_reward": 0.3}
        if cur:
            metrics["agent_type_counts"] = {"SystemAgent": 3, "IndependentAgent": 1,
                                            "ControlAgent": 1}
        else:
            metrics.update(system_agents=3, independent_agents=1, control_agents=1)
        if step == 1:
            metrics["resources_consumed"] = 1.5
        states = [("a1", 1.0, 2.0, 10.0, 90.0, 100.0, 0, False, 0.5, step),
                  ("a2", 3.5, 4.25, 8.0, 95.0, 90.0, 1, 1, 1.25, step),
                  ("a1", 1.5, 2.0, 9.0, 90.0, 100.0, 0, True, 1.0, step)]  # a1 twice
        resources = [("r1" if cur else 1, 19.0 - step, 5.0, 6.0), (7, 3.5, 0, 1)]
        calls.append(("log_step", (), {"step_number": step, "agent_states": states,
                                            "resource_states": resources, "metrics": metrics}))
        calls.append(("flush_action_buffer", (), {}) if step == 0
                     else ("flush_health_buffer", (), {}))
    if cur:
        calls += [
            act(2, "a3", "move", details={"dropped": True}),
            ("log_health_incident", (), {"step_number": 2, "agent_id": "a3", "health_before": 1,
                                             "health_after": 0, "cause": "starvation"}),
            ("discard_pending_agents", (["a3"],), {}),
            act(2, "a1", "pass"),
            ("needs_flush", (), {}),
        ]
    else:  # the original generation's other buffered tables
        calls += [
            ("log_learning_experience", (), {
                "step_number": 2, "agent_id": "a2", "module_type": "dqn", "module_id": 7,
                "action_taken": 3, "action_taken_mapped": "move", "reward": 0.25}),
            ("log_reproduction_event", (), {
                "step_number": 2, "parent_id": "a1", "offspring_id": None, "success": False,
                "parent_resources_before": 10.0, "parent_resources_after": 10.0,
                "offspring_initial_resources": None, "failure_reason": "resources",
                "parent_generation": 0, "offspring_generation": None,
                "parent_position": (1.0, 2.0)}),
            ("flush_learning_buffer", (), {}),
            ("flush_reproduction_buffer", (), {}),
        ]
    calls.append(("flush_all_buffers", (), {}))
    return calls


def _call(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
          ) -> tuple[str, Any]:
    import copy
    try:
        attr = getattr(obj, name)
    except AttributeError:
        return "missing", None
    try:
        value = attr(*copy.deepcopy(args), **copy.deepcopy(kwargs)) if callable(attr) else attr
    except Exception as exc:
        return "raised", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return "ok", value


def _table_rows(conn: sa.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    info = conn.execute(sa.text(f'PRAGMA table_info("{table}")')).fetchall()
    pks = [r for r in info if r[5]]
    skip = set()
    if len(pks) == 1 and pks[0][2].upper() == "INTEGER":
        skip.add(pks[0][1])  # autoincrement key
    for r in info:
        if r[2].upper() in ("DATETIME", "TIMESTAMP") and r[1] not in ("start_time",
                                                                         "end_time"):
            skip.add(r[1])  # wall-clock stamp
    cols = [r[1] for r in info if r[1] not in skip]
    if not cols:
        return cols, []
    sel = ", ".join(f'"{c}"' for c in cols)
    rows = conn.execute(sa.text(f'SELECT {sel} FROM "{table}" ORDER BY rowid')).fetchall()
    return cols, [tuple(r) for r in rows]


def _master(conn: sa.Connection) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sa.text(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))}


def _insert_simulation(engine: sa.Engine) -> None:
    sims = sa.Table("simulations", sa.MetaData(), autoload_with=engine)
    row = {"simulation_id": SIM, "start_time": START, "status": "running",
           "parameters": {"seed": 1, "agents": 5}, "simulation_db_path": "identity.db"}
    with engine.begin() as conn:
        conn.execute(sims.insert(), {k: v for k, v in row.items() if k in sims.c})


def identity(args: argparse.Namespace) -> int:
    fdb = load_agentfarm(args.agentfarm)
    gen = farm_generation(fdb)
    print(f"Row identity, AgentFarm {_git(Path(args.agentfarm))} at {args.agentfarm} "
          f"(generation {gen!r}) against the drop-in (agentmem {_git(REPO)})")
    admin = redis.Redis.from_url(args.url)
    mem = agentmem.connect(args.url)
    found = 0
    for database in (False, True):
        print("\n" + ("drop-in with database= (an AgentFarm SimulationDatabase on its file: "
                      "the rows other than actions written in its transactions)"
                      if database else "drop-in on its archive alone"))
        found += identity_pass(fdb, gen, mem, admin, args, database=database)
    return 1 if found else 0


def identity_pass(fdb: ModuleType, gen: str, mem: Any, admin: redis.Redis,
                  args: argparse.Namespace, *, database: bool) -> int:
    """One comparison (see the module's docstring); prints it, returns the differences.
    ``database``: the drop-in gets ``database=`` a ``SimulationDatabase`` of AgentFarm's
    on the drop-in's own file."""
    admin.flushdb()
    diffs: list[str] = []
    with tempfile.TemporaryDirectory(prefix="afidentity-") as tmpdir:
        af_path, am_path = Path(tmpdir) / "agentfarm.db", Path(tmpdir) / "dropin.db"
        with contextlib.redirect_stdout(sys.stderr):
            db = fdb.SimulationDatabase(str(af_path), simulation_id=SIM)
        _insert_simulation(db.engine)
        am_db = None
        if database:
            with contextlib.redirect_stdout(sys.stderr):
                am_db = fdb.SimulationDatabase(str(am_path), simulation_id=SIM)
        archive = agentmem.open_archive(am_path, generation=gen)  # type: ignore[arg-type]
        _insert_simulation(archive.engine)
        transactions = [0]
        if am_db is not None:  # counted: the drop-in's rows go through it
            inner = am_db._execute_in_transaction

            def counted(func: Any) -> Any:
                transactions[0] += 1
                return inner(func)

            am_db._execute_in_transaction = counted
        dropin = AgentFarmLogger(mem, archive, SIM, database=am_db)
        calls = identity_calls(gen)
        for n, (name, cargs, ckw) in enumerate(calls, 1):
            with contextlib.redirect_stdout(sys.stderr):  # AgentFarm's log lines
                a = _call(db.logger, name, cargs, ckw)
            b = _call(dropin, name, cargs, ckw)
            if a[0] != b[0] or (a[0] == "ok" and name in ("discard_pending_agents",
                                                          "needs_flush") and a[1] != b[1]):
                shown = ", ".join([*(repr(x) for x in cargs),
                                   *(f"{k}={v!r}" for k, v in ckw.items())])
                if len(shown) > 200:
                    shown = shown[:200] + "..."
                diffs.append(f"call {n}: {name}({shown}): AgentFarm {a[0]}"
                             f"{'' if a[1] is None else ' ' + repr(a[1])}, drop-in {b[0]}"
                             f"{'' if b[1] is None else ' ' + repr(b[1])}")
        with contextlib.suppress(Exception), contextlib.redirect_stdout(sys.stderr):
            db.logger.flush_all_buffers()
        with contextlib.suppress(Exception):
            dropin.close()
        redis_n = redis_count(mem, SIM)
        with contextlib.redirect_stdout(sys.stderr):
            db.close()
            if am_db is not None:
                am_db.close()
        archive.close()
        af_eng = sa.create_engine(f"sqlite:///{af_path}")
        am_eng = sa.create_engine(f"sqlite:///{am_path}")
        with af_eng.connect() as fa, am_eng.connect() as fb:
            ma, mb = _master(fa), _master(fb)
            af_tables = sorted(n for (t, n) in ma if t == "table")
            for key in sorted(ma):
                if key not in mb:
                    diffs.append(f"schema: {key[0]} {key[1]} missing in the drop-in's file")
                elif ma[key] != mb[key]:
                    diffs.append(f"schema: {key[0]} {key[1]} differs:\n    AgentFarm: "
                                 f"{ma[key][1]}\n    drop-in:   {mb[key][1]}")
            for key in sorted(mb):
                if key not in ma and mb[key][0] in af_tables:
                    diffs.append(f"schema: {key[0]} {key[1]} on AgentFarm's table "
                                 f"{mb[key][0]} only in the drop-in's file: {mb[key][1]}")
            others = sorted(n for (t, n) in mb if t == "table" and n not in af_tables)
            counts = []
            for table in af_tables:
                ca, ra = _table_rows(fa, table)
                cb, rb = _table_rows(fb, table) if ("table", table) in mb else ([], [])
                counts.append(f"{table} {len(ra)}/{len(rb)}")
                if ca != cb:
                    diffs.append(f"{table}: columns differ: AgentFarm {ca}, drop-in {cb}")
                    continue
                shown = 0
                sm = difflib.SequenceMatcher(a=ra, b=rb, autojunk=False)
                for op, i1, i2, j1, j2 in sm.get_opcodes():
                    if op == "equal":
                        continue
                    if shown >= args.max_diffs:
                        diffs.append(f"{table}: ... more rows differ")
                        break
                    shown += 1
                    if op == "replace" and i2 - i1 == j2 - j1:
                        for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                            cells = [f"{c}: AgentFarm {p!r}, drop-in {q!r}"
                                     for c, p, q in zip(ca, ra[i], rb[j], strict=True)
                                     if p != q or type(p) is not type(q)]
                            diffs.append(f"{table} row {i + 1}: " + "; ".join(cells))
                        continue
                    for i in range(i1, i2):
                        diffs.append(f"{table} row {i + 1} only in AgentFarm's file: "
                                     f"{dict(zip(ca, ra[i], strict=True))}")
                    for j in range(j1, j2):
                        diffs.append(f"{table} row {j + 1} only in the drop-in's file: "
                                     f"{dict(zip(cb, rb[j], strict=True))}")
                for i in range(min(len(ra), len(rb))):  # equal values, different types
                    if ra[i] == rb[i] and any(type(p) is not type(q)
                                              for p, q in zip(ra[i], rb[i], strict=True)):
                        cells = [f"{c}: AgentFarm {p!r}, drop-in {q!r}"
                                 for c, p, q in zip(ca, ra[i], rb[i], strict=True)
                                 if type(p) is not type(q)]
                        diffs.append(f"{table} row {i + 1} storage type: " + "; ".join(cells))
            af_actions = fa.execute(sa.text("SELECT count(*) FROM agent_actions")).scalar_one()
        af_eng.dispose()
        am_eng.dispose()
    admin.flushdb()
    print(f"{len(calls)} calls; rows AgentFarm/drop-in: {', '.join(counts)}")
    print(f"Redis holds {redis_n} actions of {af_actions} in AgentFarm's agent_actions"
          + ("" if redis_n == af_actions else "  <-- differs"))
    if redis_n != af_actions:
        diffs.append(f"Redis holds {redis_n} actions, AgentFarm's agent_actions {af_actions}")
    if others:
        print(f"drop-in's own tables (not compared): {', '.join(others)}")
    if database:
        print(f"the drop-in's transactions of the SimulationDatabase: {transactions[0]}")
        if not transactions[0]:
            diffs.append("database=: no row went through the SimulationDatabase")
    print(f"{len(diffs)} difference(s)" + (":" if diffs else ""))
    for d in diffs:
        print(f"  - {d}")
    return len(diffs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agentfarm", metavar="PATH",
                    help="a checkout of AgentFarm (github Dooders/AgentFarm) to import")
    ap.add_argument("--n", type=int, default=5000, help="log_agent_action calls per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="FILE", help="write all numbers to FILE")
    ap.add_argument("--url", default=DEFAULT_URL,
                    help="Redis database used (flushed before and after each run)")
    ap.add_argument("--identity", action="store_true",
                    help="compare the rows and schema with AgentFarm's DataLogger instead")
    ap.add_argument("--max-diffs", type=int, default=12, help="row differences per table")
    args = ap.parse_args(argv)
    if args.n < AGENTS or args.n % AGENTS:
        ap.error(f"--n must be a positive multiple of {AGENTS}")
    if args.identity and not args.agentfarm:
        ap.error("--identity needs --agentfarm PATH")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return identity(args) if args.identity else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
