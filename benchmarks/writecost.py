"""Where the write's server CPU goes: the write script against the floor, in one run.

    python -m benchmarks.writecost                      # Redis and Valkey, batches 100 and 500
    python -m benchmarks.writecost --server redis --batch 100 500 1000 --repeat 5

Not part of the test suite. ``bench.py``'s data (100 agents x 200 steps, step by
step) is prepared by ``add_many``'s planner and its write-script calls are captured
(:meth:`agentmem.plans.write.WritePlanner.batch`, calls of ``--batch`` records). Each
path then writes all the actions into a flushed database of a private server, the
calls sent in one pipeline so that the client costs the server nothing, and the
server's CPU per action is read from ``INFO cpu`` (user + sys), median of rounds that
take turns (every other round in reverse order):

  floor          ``benchmarks/floor.py``: one variadic command per key for 1,000
                 actions, no Lua (the ``floor (pipeline)`` row of ``bench.py``)
  floor, batch   the same with batches of ``--batch`` actions
  write script   agentmem's write script (``agentmem/lua/src/core/write.lua``) on
                 the captured calls: what ``add_many`` costs the server
  column script  ``core/write_cols.lua`` on the calls ``add_rows`` of the same actions
                 sends as columns (:class:`agentmem.plans.colwrite.ColumnBatcher`): the
                 same writes, the keys and index entries built on the server
  --also FILE    another version of the write script taking the same arguments
                 (e.g. the previous commit's ``write.lua``), on the same calls
  write script, one argument per value
                 the same script reading ``ARGV`` itself, on the same calls with
                 their MessagePack array spread into one argument per value (the
                 argument format before it was packed): what packing saves the server
  add_many       ``mem.actions.add_many([Action(**d) for d in all])`` with
                 ``batch_size`` ``--batch``: the write script as the library sends it
                 (calls sent as they are built), for reference
  writes only    ``benchmarks/lua/write_floor.lua`` on the same calls: the script's
                 writes and nothing else (no check, no id decided), the cheapest
                 any script taking these arguments can be

Checks that the write script and the writes-only script leave the same keys.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agentmem
from agentmem import Action
from agentmem.lua.scripts import WRITE, WRITE_COLS
from agentmem.plans.colwrite import ColumnBatcher
from agentmem.servers.local import LocalServer, find_binary
from benchmarks.bench import make_actions, server_cpu
from benchmarks.floor import floor_writer

WRITE_FLOOR = (Path(__file__).resolve().parent / "lua" / "write_floor.lua").read_text()
PACKED = "local A = cmsgpack.unpack(ARGV[1])\n"
assert PACKED in WRITE.source
WRITE_PER_VALUE = WRITE.source.replace(PACKED, "local A = ARGV\n")
"""The write script as it read its arguments before they were packed (benchmark only)."""


def capture(url: str, actions: list[dict[str, Any]], batch: int) -> list[tuple[Any, ...]]:
    """The ARGV of each write-script call ``add_many`` makes for ``actions``."""
    mem = agentmem.connect(url + f"?batch_size={batch}")
    repo = mem.actions
    records = [Action(**d) for d in actions]
    for rec in records:
        repo.check(rec)
    writer = repo.writer
    prepared = writer.prepare_all(records)
    out = []
    for chunk in writer.chunks(prepared, range(len(prepared))):
        call, _ = writer.batch([prepared[j] for j in chunk])
        out.append(call.args[3:])  # EVALSHA sha 0 <argv>
    mem.close()
    return out


def capture_columns(url: str, actions: list[dict[str, Any]], batch: int
                    ) -> list[tuple[Any, ...]]:
    """The ARGV of each column-script call ``add_rows`` makes for ``actions``."""
    mem = agentmem.connect(url + f"?batch_size={batch}")
    repo = mem.actions
    values, fast = repo._row_checks()
    prepared = repo._row_planner().prepare_rows(actions, repo.check, values, fast)
    batcher = ColumnBatcher(repo.writer)
    assert batcher.takes(prepared)
    out = [batcher.batch([prepared[j] for j in chunk])[0].args[3:]
           for chunk in repo.writer.chunks(prepared, range(len(prepared)))]
    mem.close()
    return out


def script_path(r: redis.Redis, sha: str, calls: list[tuple[Any, ...]]) -> Callable[[], None]:
    def go() -> None:
        pipe = r.pipeline(transaction=False)
        for argv in calls:
            pipe.execute_command("EVALSHA", sha, 0, *argv)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception):
                raise reply
    return go


def add_many(url: str, batch: int, actions: list[dict[str, Any]]) -> Callable[[], None]:
    mem = agentmem.connect(url + f"?batch_size={batch}")

    def go() -> None:
        mem.actions.add_many([Action(**d) for d in actions])
    return go


def run_server(url: str, batches: list[int], repeat: int, actions: list[dict[str, Any]],
               label: str, also: list[Path]) -> list[str]:
    r = redis.Redis.from_url(url)
    write_sha = r.script_load(WRITE.source)
    cols_sha = r.script_load(WRITE_COLS.source)
    floor_sha = r.script_load(WRITE_FLOOR)
    per_value_sha = r.script_load(WRITE_PER_VALUE)
    other_shas = [(p, r.script_load(p.read_text())) for p in also]

    def floor(size: int) -> Callable[[], None]:
        write = floor_writer(r, size)
        return lambda: write(actions)

    paths: list[tuple[str, Callable[[], None]]] = [
        ("floor (1,000 per pipeline)", floor(1000))]
    for b in batches:
        calls = capture(url, actions, b)
        paths += [
            (f"floor, batches of {b}", floor(b)),
            (f"writes only (Lua), calls of {b}", script_path(r, floor_sha, calls)),
            (f"write script, calls of {b}", script_path(r, write_sha, calls)),
            (f"column script, calls of {b}",
             script_path(r, cols_sha, capture_columns(url, actions, b))),
            (f"write script, one argument per value, calls of {b}",
             script_path(r, per_value_sha, [tuple(msgpack.unpackb(c[0], raw=True))
                                            for c in calls])),
            (f"add_many, calls of {b}", add_many(url, b, actions)),
        ]
        paths += [(f"{p}, calls of {b}", script_path(r, sha, calls)) for p, sha in other_shas]
    cpu: dict[str, list[float]] = {name: [] for name, _ in paths}
    keys: dict[str, int] = {}
    n = len(actions)
    for rnd in range(repeat + 1):  # round 0 warms up
        # every other round in reverse order: no path always follows the same one
        for name, go in (paths if rnd % 2 else paths[::-1]):
            r.flushdb()
            before = server_cpu(r)
            go()
            spent = server_cpu(r) - before
            keys[name] = int(r.dbsize())
            if rnd:
                cpu[name].append(spent * 1e6 / n)
        print(f"... {label}: round {rnd} of {repeat} done", file=sys.stderr)
    base = statistics.median(cpu[paths[0][0]])
    lines = ["| path | server CPU µs/action (median) | min-max | vs floor |",
             "|---|--:|--:|--:|"]
    for name, _ in paths:
        m = statistics.median(cpu[name])
        lines.append(f"| {name} | {m:.1f} | {min(cpu[name]):.1f}-{max(cpu[name]):.1f} "
                     f"| {m / base:.2f}x |")
    for b in batches:
        mine = cpu[f"write script, calls of {b}"]
        flat = cpu[f"write script, one argument per value, calls of {b}"]
        per_round = statistics.median(x / y for x, y in zip(mine, flat, strict=True))
        lines.append("")
        lines.append(f"Write script (one MessagePack argument) / one argument per value, calls "
                     f"of {b}: {per_round:.2f}x (median of the per-round ratios)")
        for p in also:
            other = cpu[f"{p}, calls of {b}"]
            per_round = statistics.median(x / y for x, y in zip(mine, other, strict=True))
            lines.append("")
            lines.append(f"Write script / {p}, calls of {b}: {per_round:.2f}x (median of the "
                         "per-round ratios)")
    for b in batches:
        mine = cpu[f"column script, calls of {b}"]
        rows = cpu[f"write script, calls of {b}"]
        per_round = statistics.median(x / y for x, y in zip(mine, rows, strict=True))
        lines.append("")
        lines.append(f"Column script / write script, calls of {b}: {per_round:.2f}x (median of "
                     "the per-round ratios)")
    for b in batches:
        a, w = keys[f"write script, calls of {b}"], keys[f"writes only (Lua), calls of {b}"]
        c = keys[f"column script, calls of {b}"]
        lines.append("")
        lines.append(f"Check (calls of {b}): the write script left {a:,} keys, the writes-only "
                     f"script {w:,}, the column script {c:,}"
                     + ("" if a == w == c else " (DIFFERENT)"))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=("redis", "valkey", "both"), default="both")
    ap.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--also", type=Path, nargs="*", default=[], metavar="LUA",
                    help="other versions of the write script (same arguments) to measure "
                         "on the same calls, e.g. an older commit's write.lua")
    args = ap.parse_args(argv)
    actions = make_actions(args.agents, args.steps, args.seed)
    kinds = ["redis", "valkey"] if args.server == "both" else [args.server]
    print(f"command: python -m benchmarks.writecost {' '.join(sys.argv[1:])}".rstrip())
    print(f"data: {args.agents} agents x {args.steps} steps = {len(actions):,} actions "
          f"(seed {args.seed}), step by step; {args.repeat} rounds, median")
    for kind in kinds:
        if find_binary(kind) is None:  # type: ignore[arg-type]
            print(f"\n({kind}: no server binary, skipped)")
            continue
        with LocalServer(kind) as srv:  # type: ignore[arg-type]
            info = redis.Redis.from_url(srv.url).info("server")
            version = info.get("valkey_version") or info["redis_version"]
            lines = run_server(srv.url, args.batch, args.repeat, actions, kind, args.also)
        print(f"\n### {kind} {version}\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
