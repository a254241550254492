"""Where the drop-in's per-call cost goes, against AgentFarm's ``DataLogger``, in one run.

    python -m benchmarks.agentfarm_floor --agentfarm PATH [--n 5000] [--rounds 3]

The workload is ``benchmarks.agentfarm``'s (100 agents x N/100 steps,
``flush_if_needed()`` once per step, everything complete at close). Each round
runs every path below once (order rotated, after an untimed warm-up round) and
the table shows medians, in microseconds per action:

  AgentFarm DataLogger   wall per call, and the part of it spent in its own
                         ``flush_action_buffer`` (its bulk insert into SQLite)
  drop-in buffered       wall per call, split into ``log_agent_action`` (validate
                         and append), the Redis write of each step (client wall and
                         CPU) and the archive writes (wall), plus Redis server CPU
  validate only          ``log_agent_action`` with nothing flushed (the buffer is
                         dropped untimed)
  Redis write only       ``memory.actions.add_many`` of each step's actions, built
                         before timing (no outbox, no archive): client wall and CPU,
                         server CPU
  archive only           ``archive.write`` of the stored actions, 1,000 per
                         transaction (``buffer_size``), as the writer does
  archiver process       the prototype of handing the archive to another process:
                         the drop-in's per-step Redis write in this process, the
                         archive written by a second process from the same rows
                         (sent through a pipe), both complete at close
  worker process         the prototype of handing both writes to another process:
                         ``log_agent_action`` here, each step's actions sent through a
                         pipe to a process whose ``DualWriter`` stores them in Redis and
                         the archive (its CPU is the "archiver CPU" column)

Server CPU is ``INFO cpu`` (``used_cpu_sys + used_cpu_user``) over the timed region.
Client CPU is ``time.process_time`` of this process. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem.integrations.agentfarm import AgentFarmLogger
from benchmarks.agentfarm import (
    DEFAULT_URL,
    SIM,
    _insert_simulation,
    agent_batch,
    load_agentfarm,
    make_steps,
    server_cpu,
)
from benchmarks.agentfarm import run_agentfarm as af_run

Steps = list[list[dict[str, Any]]]


class Clock:
    """Wall and process CPU seconds accumulated per phase."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t0
                self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
        return timed


def run_agentfarm(fdb: Any, steps: Steps, tmp: Path, admin: redis.Redis,
                  mem: Any) -> dict[str, float]:
    clock = Clock()

    def instrument(logger: Any) -> None:
        logger.flush_action_buffer = clock.wrap("insert", logger.flush_action_buffer)

    res = af_run(fdb, steps, tmp, instrument)
    assert res["archive_rows"] == res["n"]
    return {"wall": res["seconds"], "cpu": res["client_cpu_s"],
            "af_insert": clock.wall.get("insert", 0.0)}


def _logger(mem: Any, tmp: Path, name: str) -> tuple[AgentFarmLogger, Any]:
    archive = agentmem.open_archive(tmp / f"{name}.db")
    _insert_simulation(archive.engine)
    logger = AgentFarmLogger(mem, archive, SIM)
    logger.log_agents_batch(agent_batch(SIM))
    return logger, archive


def run_buffered(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    admin.flushdb()
    logger, archive = _logger(mem, tmp, "buffered")
    clock = Clock()
    writer = logger.writer
    # the archive transaction inside the writer's flush, timed apart from the Redis write
    writer._archive_write = clock.wrap("archive", writer._archive_write)  # type: ignore
    log = clock.wrap("log", logger.log_agent_action)
    tick = clock.wrap("flush", logger.flush_if_needed)
    close = clock.wrap("flush", logger.close)
    r0 = server_cpu(admin)
    t0, c0 = time.perf_counter(), time.process_time()
    for calls in steps:
        for kw in calls:
            log(**kw)
        tick()
    close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv = server_cpu(admin) - r0
    n = sum(map(len, steps))
    assert archive.count(SIM) == n
    archive.close()
    return {"wall": wall, "cpu": cpu, "server": srv,
            "log": clock.wall["log"],
            "redis_wall": clock.wall["flush"] - clock.wall.get("archive", 0.0),
            "redis_cpu": clock.cpu["flush"] - clock.cpu.get("archive", 0.0),
            "archive": clock.wall.get("archive", 0.0),
            "archive_cpu": clock.cpu.get("archive", 0.0), "log_cpu": clock.cpu["log"]}


def run_validate(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    admin.flushdb()
    logger, archive = _logger(mem, tmp, "validate")
    logger._buffer_size = 10**9
    log = logger.log_agent_action
    wall = cpu = 0.0
    for calls in steps:
        t0, c0 = time.perf_counter(), time.process_time()
        for kw in calls:
            log(**kw)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        logger._action_buffer.clear()  # as a flush would, untimed
    logger.close()
    archive.close()
    return {"wall": wall, "cpu": cpu}


def _actions(steps: Steps, tmp: Path, mem: Any) -> list[list[Any]]:
    """Each step's actions, validated as the drop-in builds them (untimed)."""
    logger, archive = _logger(mem, tmp, "build")
    logger._buffer_size = 10**9
    out = []
    for calls in steps:
        for kw in calls:
            logger.log_agent_action(**kw)
        out.append(list(logger._action_buffer))
        logger._action_buffer.clear()
    logger.close()
    archive.close()
    return out


def run_redis(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    per_step = _actions(steps, tmp, mem)
    admin.flushdb()
    add = mem.actions.add_many
    r0 = server_cpu(admin)
    t0, c0 = time.perf_counter(), time.process_time()
    for actions in per_step:
        add(actions)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv = server_cpu(admin) - r0
    admin.flushdb()
    return {"wall": wall, "cpu": cpu, "server": srv}


def run_archive(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    per_step = _actions(steps, tmp, mem)
    admin.flushdb()
    stored = [a for actions in per_step for a in mem.actions.add_many(actions)]
    admin.flushdb()
    archive = agentmem.open_archive(tmp / "archive.db")
    _insert_simulation(archive.engine)
    archive.write_details_as_agentfarm()
    AgentFarmLogger(mem, archive, SIM).log_agents_batch(agent_batch(SIM))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(stored), 1000):
        archive.write(stored[i:i + 1000])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert archive.count(SIM) == len(stored)
    archive.close()
    admin.flushdb()
    return {"wall": wall, "cpu": cpu}


def _archiver(path: str, conn: Any) -> None:
    """The second process: archive what the pipe brings, 1,000 rows per transaction."""
    archive = agentmem.open_archive(path)
    archive.write_details_as_agentfarm()
    pending: list[Any] = []
    while True:
        got = conn.recv()
        if got is None:
            break
        pending.extend(got)
        if len(pending) >= 1000:
            archive.write(pending)
            pending = []
    if pending:
        archive.write(pending)
    archive.close()
    conn.send("done")


def run_process(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    """Prototype: validate and store in Redis here, archive in another process."""
    admin.flushdb()
    logger, archive = _logger(mem, tmp, "process")
    logger.close()  # the tables, the simulation and agents rows; the writer is not used
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_archiver, args=(str(tmp / "process.db"), there))
    proc.start()
    add = mem.actions.add_many
    buf: list[Any] = []
    lg = AgentFarmLogger.__new__(AgentFarmLogger)  # only its validation, on this buffer
    lg.durability, lg._action_buffer, lg._buffer_size = "buffered", buf, 10**9
    lg.simulation_id, lg._closed = SIM, False
    log = lg.log_agent_action
    k0 = sum(os.times()[2:4])  # the archiver's CPU, once it has been waited for
    r0 = server_cpu(admin)
    t0, c0 = time.perf_counter(), time.process_time()
    for calls in steps:
        for kw in calls:
            log(**kw)
        here.send(add(buf))
        buf.clear()
    here.send(None)
    assert here.recv() == "done"
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv = server_cpu(admin) - r0
    proc.join()
    child = sum(os.times()[2:4]) - k0
    n = sum(map(len, steps))
    assert archive.count(SIM) == n, archive.count(SIM)
    archive.close()
    admin.flushdb()
    return {"wall": wall, "cpu": cpu, "server": srv, "child": child}


def _worker(url: str, path: str, conn: Any) -> None:
    """The second process of the ``worker`` prototype: a dual writer of its own."""
    from agentmem.dualwrite.writer import DualWriter
    mem = agentmem.connect(url)
    archive = agentmem.open_archive(path)
    archive.write_details_as_agentfarm()
    writer = DualWriter(mem, archive, buffer_size=1000, durability="redis")
    while (got := conn.recv()) is not None:
        writer.add_many(got)
    writer.close()
    archive.close()
    conn.send("done")


def run_worker(steps: Steps, tmp: Path, admin: redis.Redis, mem: Any) -> dict[str, float]:
    """Prototype: validate here, hand each step's actions to a process that stores them
    in Redis and the archive (this process waits for neither)."""
    admin.flushdb()
    logger, archive = _logger(mem, tmp, "worker")
    logger.close()
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    url = admin.connection_pool.connection_kwargs
    proc = ctx.Process(target=_worker, args=(
        f"redis://{url['host']}:{url['port']}/{url['db']}", str(tmp / "worker.db"), there))
    proc.start()
    buf: list[Any] = []
    lg = AgentFarmLogger.__new__(AgentFarmLogger)
    lg.durability, lg._action_buffer, lg._buffer_size = "buffered", buf, 10**9
    lg.simulation_id, lg._closed = SIM, False
    log = lg.log_agent_action
    k0 = sum(os.times()[2:4])
    r0 = server_cpu(admin)
    t0, c0 = time.perf_counter(), time.process_time()
    for calls in steps:
        for kw in calls:
            log(**kw)
        here.send(buf)
        buf.clear()
    here.send(None)
    assert here.recv() == "done"
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv = server_cpu(admin) - r0
    proc.join()
    child = sum(os.times()[2:4]) - k0
    n = sum(map(len, steps))
    assert archive.count(SIM) == n, archive.count(SIM)
    assert int(sum(mem.actions.type_counts(SIM).values())) == n
    archive.close()
    admin.flushdb()
    return {"wall": wall, "cpu": cpu, "server": srv, "child": child}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agentfarm", metavar="PATH", required=True)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", default=DEFAULT_URL)
    args = ap.parse_args()
    fdb = load_agentfarm(args.agentfarm)
    admin = redis.Redis.from_url(args.url)
    mem = agentmem.connect(args.url)
    steps, warm = make_steps(args.n), make_steps(min(args.n, 1000), seed=3)
    paths: list[tuple[str, Callable[..., dict[str, float]]]] = [
        ("agentfarm", lambda s, t, a, m: run_agentfarm(fdb, s, t, a, m)),
        ("buffered", run_buffered), ("validate", run_validate), ("redis", run_redis),
        ("archive", run_archive), ("process", run_process), ("worker", run_worker)]
    res: dict[str, list[dict[str, float]]] = {name: [] for name, _ in paths}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="affloor-") as tmpdir:
        for rnd in range(-1, args.rounds):
            k = rnd % len(paths)
            for name, fn in (paths[k:] + paths[:k] if rnd >= 0 else paths):
                where = Path(tmpdir) / f"r{rnd + 1}-{name}"
                where.mkdir()
                out = fn(warm if rnd < 0 else steps, where, admin, mem)
                if rnd >= 0:
                    res[name].append(out)
    load1 = os.getloadavg()
    n = args.n

    def med(name: str, key: str) -> float:
        vals = [r[key] for r in res[name] if key in r]
        return statistics.median(vals) / n * 1e6 if vals else float("nan")

    base = med("agentfarm", "wall")
    print(f"{n} calls, {args.rounds} rounds, medians, us per action; load "
          f"{load0[0]:.2f} -> {load1[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"{'path':12} {'wall':>7} {'x AF':>6} {'client CPU':>10} {'server CPU':>10} "
          f"{'archiver CPU':>12} {'all CPU':>8}")
    for name in res:
        cpu, srv, kid = med(name, "cpu"), med(name, "server"), med(name, "child")
        total = cpu + (0.0 if srv != srv else srv) + (0.0 if kid != kid else kid)
        print(f"{name:12} {med(name, 'wall'):7.1f} {med(name, 'wall') / base:5.2f}x "
              f"{cpu:10.1f} {srv:10.1f} {kid:12.1f} {total:8.1f}")
    print("  AgentFarm's own bulk insert (flush_action_buffer): "
          f"{med('agentfarm', 'af_insert'):.1f}")
    print(f"  buffered: log_agent_action {med('buffered', 'log'):.1f} wall / "
          f"{med('buffered', 'log_cpu'):.1f} CPU, Redis write {med('buffered', 'redis_wall'):.1f}"
          f" / {med('buffered', 'redis_cpu'):.1f}, archive (with the outbox's reads) "
          f"{med('buffered', 'archive'):.1f} / {med('buffered', 'archive_cpu'):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
