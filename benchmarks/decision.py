"""The decision loop of many agents, one step at a time (issue 19 item 5, issue 18 item 7).

    python -m benchmarks.decision                    # Redis and Valkey, private servers
    python -m benchmarks.decision --server redis --agents 1000 --rounds 7

Each step, every agent writes one action and reads its recent actions (``--recent``)
and its actions of one type (``--by-type``, newest first). The data: ``--history``
actions per agent over three types, stored first. Paths, their rounds interleaved
(one step of each path per round, the order rotating), on one private server:

  per call     the pattern of docs/decision-loop.md: ``mem.actions.add``,
               ``.recent``, ``.by_type`` per agent, one round trip each
  batch        ``with mem.batch() as b:`` ``b.actions.add_many(step's actions)``,
               then per agent ``b.actions.recent`` and ``b.actions.by_type``; every
               handle's ``result()`` (models): one round trip
  batch, add   the same with one ``b.actions.add`` per agent instead of ``add_many``
  floor        one pipeline: the same write calls (agentmem's write script, as
               ``add_many`` builds them) and one Lua script
               (``benchmarks/decision_floor.lua``) doing every agent's reads and
               returning the raw hashes, decoded into dicts of bytes only

Every path builds its ``Action`` models in the timed region. The table gives the
median ms per step (wall time), the ratio to the floor's median and the median of
the per-round ratios; the CPU time per step of this process plus the server's
(``INFO cpu``), which a busy machine changes less than the wall time; the actions
read per step and the load average. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

import agentmem
from agentmem import Action
from agentmem.repository.actions import ActionRepository
from agentmem.servers.local import LocalServer, find_binary

FLOOR_LUA = (Path(__file__).parent / "decision_floor.lua").read_text()
TYPES = ("move", "eat", "rest")
SIM = "sim01"


def action(agent: str, step: int) -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=step,
                  action_type=TYPES[step % len(TYPES)], reward=(step % 7) / 10,
                  action_target_id=None, details={"step": step})


def load_history(mem: agentmem.Memory, agents: list[str], history: int) -> None:
    for step in range(history):
        mem.actions.add_many([action(a, step) for a in agents])


class Loop:
    """One step of each path; ``step`` numbers every write anew."""

    def __init__(self, mem: agentmem.Memory, agents: list[str], args: argparse.Namespace):
        self.mem = mem
        self.agents = agents
        self.recent = args.recent
        self.by_type = args.by_type
        self.step = args.history
        self.client: redis.Redis = mem.client
        self.floor_sha = self.client.script_load(FLOOR_LUA)
        layout = mem.actions.layout
        self.floor_keys = []
        for a in agents:
            self.floor_keys += [layout.key("action", agent_id=a, action_id="x")[:-1],
                                layout.key("timeline", agent_id=a),
                                layout.key("types", agent_id=a, action_type="move")]

    def _next(self) -> int:
        self.step += 1
        return self.step

    def per_call(self) -> int:
        step, acts = self._next(), self.mem.actions
        read = 0
        for a in self.agents:
            read += len(acts.recent(a, self.recent))
            read += len(acts.by_type(a, "move", limit=self.by_type))
            acts.add(action(a, step))
        return read

    def batch(self) -> int:
        step = self._next()
        with self.mem.batch() as b:
            b.actions.add_many([action(a, step) for a in self.agents])
            handles = [(b.actions.recent(a, self.recent),
                        b.actions.by_type(a, "move", limit=self.by_type)) for a in self.agents]
        return sum(len(r.result()) + len(t.result()) for r, t in handles)

    def batch_add(self) -> int:
        step = self._next()
        with self.mem.batch() as b:
            handles = []
            for a in self.agents:
                b.actions.add(action(a, step))
                handles.append((b.actions.recent(a, self.recent),
                                b.actions.by_type(a, "move", limit=self.by_type)))
        return sum(len(r.result()) + len(t.result()) for r, t in handles)

    def floor(self) -> int:
        step = self._next()
        plan = ActionRepository.add_many.build(self.mem.actions,
                                               [action(a, step) for a in self.agents])
        pipe = self.client.pipeline(transaction=False)
        for call in plan.calls:
            pipe.execute_command(*call.args)
        pipe.evalsha(self.floor_sha, 0, self.recent, self.by_type, *self.floor_keys)
        replies = pipe.execute()
        read = 0
        for recent, typed in replies[-1]:
            dicts = [dict(zip(h[::2], h[1::2], strict=True)) for h in recent]
            dicts += [dict(zip(h[::2], h[1::2], strict=True)) for h in typed]
            read += len(dicts)
        return read


PATHS = ("per call", "batch", "batch, add", "floor")


def server_cpu(admin: redis.Redis) -> float:
    """The server process's CPU seconds so far (``INFO cpu``, user + sys)."""
    info: dict[str, Any] = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_server(url: str, label: str, args: argparse.Namespace) -> dict[str, Any]:
    admin = redis.Redis.from_url(url)
    admin.flushdb()
    mem = agentmem.connect(url)
    agents = [f"agent_{i}" for i in range(args.agents)]
    load_history(mem, agents, args.history)
    loop = Loop(mem, agents, args)
    fns: dict[str, Callable[[], int]] = {"per call": loop.per_call, "batch": loop.batch,
                                         "batch, add": loop.batch_add, "floor": loop.floor}
    for fn in fns.values():  # warm-up: scripts loaded, grid cell known, caches filled
        fn()
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    cpu: dict[str, list[float]] = {p: [] for p in PATHS}
    reads: dict[str, int] = {}
    for rnd in range(args.rounds):
        order = PATHS[rnd % len(PATHS):] + PATHS[:rnd % len(PATHS)]
        for path in order:
            s0, c0 = server_cpu(admin), time.process_time()
            t0 = time.perf_counter()
            reads[path] = fns[path]()
            times[path].append((time.perf_counter() - t0) * 1000)
            cpu[path].append((time.process_time() - c0 + server_cpu(admin) - s0) * 1000)
        if not args.quiet:
            print(f"  {label} round {rnd + 1}/{args.rounds}: " + ", ".join(
                f"{p} {times[p][-1]:.0f} ms" for p in PATHS), file=sys.stderr)
    mem.close()
    admin.flushdb()
    admin.close()
    floor, floor_cpu = statistics.median(times["floor"]), statistics.median(cpu["floor"])
    return {"label": label, "rows": [
        {"path": p, "ms": statistics.median(times[p]),
         "ratio": statistics.median(times[p]) / floor,
         "round_ratio": statistics.median(t / f for t, f in zip(times[p], times["floor"],
                                                                strict=True)),
         "cpu": statistics.median(cpu[p]), "cpu_ratio": statistics.median(cpu[p]) / floor_cpu,
         "reads": reads[p]} for p in PATHS], "load": Path("/proc/loadavg").read_text().split()[:3]
        if Path("/proc/loadavg").exists() else []}


def render(res: dict[str, Any]) -> str:
    lines = [f"{res['label']} (load average after: {' '.join(res['load'])})",
             "| path | ms/step (median) | vs floor | median of per-round ratios "
             "| CPU ms/step, client + server | vs floor | actions read/step |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in res["rows"]:
        lines.append(f"| {row['path']} | {row['ms']:.0f} | {row['ratio']:.2f}x | "
                     f"{row['round_ratio']:.2f}x | {row['cpu']:.0f} | {row['cpu_ratio']:.2f}x | "
                     f"{row['reads']:,} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=("redis", "valkey", "both"), default="both")
    ap.add_argument("--url", help="an existing server's empty database (flushed!)")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--history", type=int, default=12, help="actions per agent first")
    ap.add_argument("--recent", type=int, default=5, help="recent actions read per agent")
    ap.add_argument("--by-type", type=int, default=5,
                    help="limit of the by-type query per agent")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quiet", action="store_true")
    ns = ap.parse_args(argv)
    for name in ("agents", "history", "recent", "by_type", "rounds"):
        if getattr(ns, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return ns


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("command: python -m benchmarks.decision " + " ".join(
        sys.argv[1:] if argv is None else argv))
    print(f"{args.agents} agents, {args.history} actions each first; per step and agent: "
          f"one write, recent({args.recent}), by_type(limit={args.by_type}); "
          f"{args.rounds} rounds, median; {os.cpu_count()} CPUs")
    results = []
    if args.url:
        results.append(run_server(args.url, "existing server", args))
    else:
        kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
        for kind in kinds:
            if find_binary(kind) is None:  # type: ignore[arg-type]
                print(f"note: no {kind} server binary found; skipped", file=sys.stderr)
                continue
            with LocalServer(kind) as srv:  # type: ignore[arg-type]
                results.append(run_server(srv.url, f"private {kind}-server", args))
    for res in results:
        print()
        print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
