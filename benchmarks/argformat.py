"""The write script's argument format: one argument per field, or one packed value per call.

    pip install msgpack   # not a dependency of agentmem: this measures a format it may adopt
    python -m benchmarks.argformat [--records 100] [--fields 64] [--calls 300]

Not part of the test suite. Issue 19 items 2 and 3 measured that the write script's
arguments cost on both sides: hiredis packs the 64 arguments of a record in several
µs, and the server turns each into a Lua string before the script runs. This compares,
in one run, for calls of ``--records`` records of ``--fields`` short values each (the
shape of an action's arguments):

- client CPU per record to pack the call: the values as separate ``EVALSHA`` arguments
  (``hiredis.pack_command``, as agentmem's runner does), against the records as one
  msgpack value (``msgpack.packb`` + ``hiredis.pack_command``);
- server CPU per record (``INFO cpu``, median of 3 rounds on a private server of each
  kind) of a script that reads every value once: from ``ARGV``, against from
  ``cmsgpack.unpack(ARGV[1])`` (the MessagePack library built into Redis's and Valkey's
  Lua), with an empty script's cost beside them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import hiredis
import redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agentmem.servers.local import LocalServer, find_binary

ARGV_SCRIPT = """
local n = 0
for i = 1, #ARGV do n = n + #ARGV[i] end
return n"""
PACKED_SCRIPT = """
local t = cmsgpack.unpack(ARGV[1])
local n = 0
for r = 1, #t do local rec = t[r]; for i = 1, #rec do n = n + #rec[i] end end
return n"""
EMPTY_SCRIPT = "return 0"
VALUES = ["move", "a12", "sim_bench", "0.123456789012345", "17", "", "agent_42:7:3"]


def records(n: int, fields: int) -> list[list[str]]:
    rng = random.Random(1)
    return [[rng.choice(VALUES) for _ in range(fields)] for _ in range(n)]


def client(recs: list[list[str]], calls: int, packb: Any) -> tuple[float, float]:
    flat = [v for r in recs for v in r]
    sha = "0" * 40
    per = calls * len(recs)
    argv, packed = [], []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(calls):
            hiredis.pack_command(("EVALSHA", sha, 0, *flat))
        t1 = time.process_time()
        for _ in range(calls):
            hiredis.pack_command(("EVALSHA", sha, 0, packb(recs)))
        t2 = time.process_time()
        argv.append((t1 - t0) / per * 1e6)
        packed.append((t2 - t1) / per * 1e6)
    return statistics.median(argv), statistics.median(packed)


def server(url: str, recs: list[list[str]], calls: int, packb: Any) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    flat = [v for rec in recs for v in rec]
    paths = {"argv": (r.script_load(ARGV_SCRIPT), flat),
             "packed": (r.script_load(PACKED_SCRIPT), [packb(recs)]),
             "empty": (r.script_load(EMPTY_SCRIPT), [])}

    def cpu() -> float:
        info = r.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    got: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(3):
        for name, (sha, args) in paths.items():
            pipe = r.pipeline(transaction=False)
            for _ in range(calls):
                pipe.evalsha(sha, 0, *args)
            c0 = cpu()
            replies = pipe.execute()
            got[name].append((cpu() - c0) / (calls * len(recs)) * 1e6)
            assert name == "empty" or replies[0] == sum(len(v) for v in flat)
    r.close()
    return {k: statistics.median(v) for k, v in got.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--fields", type=int, default=64)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    try:
        import msgpack  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("this benchmark needs msgpack: pip install msgpack", file=sys.stderr)
        return 2
    recs = records(args.records, args.fields)
    a, p = client(recs, args.calls, msgpack.packb)
    print(f"client CPU µs/record to pack a call of {args.records} records x {args.fields} "
          f"values: separate arguments {a:.2f}, one msgpack value {p:.2f} ({p / a:.2f}x)")
    for kind in ("redis", "valkey"):
        if find_binary(kind) is None:
            continue
        with LocalServer(kind) as srv:
            s = server(srv.url, recs, args.calls, msgpack.packb)
        print(f"{kind}: server CPU µs/record reading every value: from ARGV {s['argv']:.2f}, "
              f"from cmsgpack.unpack {s['packed']:.2f} ({s['packed'] / s['argv']:.2f}x), "
              f"an empty script {s['empty']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
