"""Read-only commands: ``stats``, ``inspect``, ``query``, ``export``."""

from __future__ import annotations

import csv
import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import click

from agentmem.backends.masters import scan_keys, used_memory
from agentmem.cli import output
from agentmem.cli.exits import Empty, NotFound
from agentmem.cli.stores import Stores
from agentmem.dualwrite.sync import archive_to_sql
from agentmem.model.records import Action, IMAction
from agentmem.plans.plan import Plan, command, every_reply, single
from agentmem.tiers import reads as tierreads
from agentmem.tiers.maintenance import Tiers

pass_stores = click.make_pass_decorator(Stores)


def _scan(stores: Stores, pattern: str) -> list[str]:
    """Keys matching ``pattern`` (SCAN; on a Redis Cluster, on every master)."""
    keys: Any = scan_keys(stores.memory, pattern, 1000)
    return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in keys)


def _glob(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _used_memory(memory: Any) -> dict[str, Any]:
    """``used_memory`` of the server, or summed over a cluster's masters."""
    used = used_memory(memory)
    return {"used_memory": used, "used_memory_human": _human(used)}


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)  # pragma: no cover


def collect_stats(stores: Stores) -> dict[str, Any]:
    """Counts per simulation, agent, type and tier; memory; layout version. Works on one
    server and on a Redis Cluster (SCAN on every master, reads routed by slot)."""
    mem = stores.memory
    run = mem.runner.run
    lay = mem.actions.layout
    sims: dict[str, Any] = {}
    pre, suf = lay.template("sim_actions").around("simulation_id", {})
    names = []
    for key in _scan(stores, _glob(pre) + "*" + _glob(suf)):
        found = lay.parse(key)
        if found is not None and found[0] == "sim_actions":
            names.append((found[1]["simulation_id"], key))
    calls = [c for sim, key in names for c in (
        command("LLEN", key), command("HGETALL", lay.key("sim_by_type", simulation_id=sim)))]
    replies = run(Plan(calls, every_reply)) if calls else []
    for n, (sim, _) in enumerate(names):
        length, raw = replies[2 * n:2 * n + 2]
        by_type = {_str(k): int(v) for k, v in _hash_items(raw)}
        sims[sim] = {"stm_actions": int(length), "by_type": by_type,
                     "archived": stores.archive.count(sim) if stores.has_archive() else 0}
    agents = Tiers(mem).agents()
    calls = [command("ZCARD", lay.key(family, agent_id=a))
             for a in agents for family in ("timeline", "im_timeline")]
    counts = [int(x) for x in run(Plan(calls, every_reply))] if calls else []
    per_agent = {a: {"stm": counts[2 * n], "im": counts[2 * n + 1]}
                 for n, a in enumerate(agents)}
    types: Counter[str] = Counter()
    for s in sims.values():
        types.update(s["by_type"])
    return {
        "stores": stores.describe(),
        "layout_version": lay.version,
        "simulations": sims,
        "agent_count": len(agents),
        "agents": per_agent,
        "tiers": {"stm": sum(counts[0::2]), "im": sum(counts[1::2]),
                  "archive": stores.archive.count() if stores.has_archive() else 0},
        "types_in_stm": dict(types.most_common()),
        "memory": _used_memory(mem),
    }


def _hash_items(raw: Any) -> list[tuple[Any, Any]]:
    """HGETALL's reply as pairs: a dict (parsed) or a flat list (raw RESP2)."""
    if isinstance(raw, dict):
        return list(raw.items())
    return list(zip(raw[0::2], raw[1::2], strict=True))


def _str(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


TOP_AGENTS = 10
"""Agents the human ``stats`` output lists by default (those with the most actions)."""


def known_simulation(stores: Stores, simulation: str) -> bool:
    """Whether Redis (its simulation list) or the archive holds the simulation."""
    key = stores.memory.actions.layout.key("sim_actions", simulation_id=simulation)
    if stores.memory.runner.run(single(command("EXISTS", key), int)):
        return True
    return stores.has_archive() and stores.archive.count(simulation) > 0


def require_simulation(stores: Stores, simulation: str) -> None:
    """Raise :class:`NotFound` for a simulation neither store holds."""
    if not known_simulation(stores, simulation):
        raise NotFound(f"unknown simulation {simulation!r}: neither Redis nor the archive "
                       "holds it (`agentmem stats` lists the simulations)")


def require_agent(stores: Stores, agent: str) -> None:
    """Raise :class:`NotFound` for an agent with nothing in STM or IM."""
    if not tierreads.known(stores.memory, agent):
        raise NotFound(f"unknown agent {agent!r}: it has nothing in short-term or "
                       "intermediate memory (`agentmem stats --top 0` lists the agents)")


@click.command()
@click.option("--top", type=click.IntRange(min=0), default=TOP_AGENTS, show_default=True,
              help="Agents listed (those with the most actions); 0: all.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every agent).")
@pass_stores
def stats(stores: Stores, top: int, as_json: bool) -> None:
    """Counts per simulation, agent, type and tier; memory; layout version."""
    s = collect_stats(stores)
    if as_json:
        output.json_object(s)
        return
    output.pairs("stores", s["stores"])
    output.pairs("tiers", {"short-term (STM)": s["tiers"]["stm"],
                           "intermediate (IM)": s["tiers"]["im"],
                           "archive rows": s["tiers"]["archive"]})
    output.pairs("memory", {"used_memory": s["memory"]["used_memory_human"],
                            "agents": s["agent_count"], "layout version": s["layout_version"]})
    output.table([{"simulation": k, "stm actions": v["stm_actions"],
                   "archived": v["archived"]} for k, v in s["simulations"].items()],
                 ["simulation", "stm actions", "archived"])
    ranked = sorted(s["agents"].items(),
                    key=lambda kv: (-(kv[1]["stm"] + kv[1]["im"]), kv[0]))
    shown = ranked[:top] if top else ranked
    output.table([{"agent": a, "stm": c["stm"], "im": c["im"]} for a, c in shown],
                 ["agent", "stm", "im"])
    if len(shown) < len(ranked):
        output.truncated(len(shown), len(ranked), "agents (most actions first)",
                         "--top 0 or --json lists all")
    output.table([{"type": k, "count": v} for k, v in s["types_in_stm"].items()],
                 ["type", "count"])


@click.command()
@click.argument("agent")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Recent actions to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def inspect(stores: Stores, agent: str, limit: int, as_json: bool) -> None:
    """An agent's recent actions, its action mix and its best actions (STM and IM)."""
    mem = stores.memory
    require_agent(stores, agent)
    everything = tierreads.history(mem, agent)
    recent = list(reversed(everything))[:limit]
    mix = Counter(a.action_type for a in everything)
    best = sorted((a for a in everything if a.reward is not None),
                  key=lambda a: -(a.reward or 0.0))[:5]
    if as_json:
        output.json_object({"agent": agent, "actions": len(everything),
                            "recent_truncated": len(recent) < len(everything),
                            "recent": [output.action_row(a) for a in recent],
                            "mix": dict(mix.most_common()),
                            "best": [output.action_row(a) for a in best]})
        return
    click.secho(f"agent {agent}: {len(everything)} actions in memory", bold=True)
    click.secho("recent", bold=True)
    output.actions(recent, False)
    if len(recent) < len(everything):
        output.truncated(len(recent), len(everything), "actions", "raise --limit")
    click.secho("action mix", bold=True)
    output.table([{"type": k, "count": v, "share": f"{v / len(everything):.0%}"}
                  for k, v in mix.most_common()], ["type", "count", "share"])
    click.secho("best actions (top 5 by reward)", bold=True)
    output.actions(best, False)


def _steps(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    lo, colon, hi = text.partition(":")
    try:
        if not colon:
            raise ValueError(text)
        start, end = (int(lo) if lo else None), (int(hi) if hi else None)
    except ValueError:
        raise click.BadParameter("use START:END, either may be empty", param_hint="--steps") \
            from None
    if start is not None and end is not None and start > end:
        raise click.BadParameter(f"START {start} is after END {end}", param_hint="--steps")
    return start, end


@click.command()
@click.option("--agent", required=True, help="The agent whose memory is queried.")
@click.option("--type", "action_type", help="Actions of this type (newest first).")
@click.option("--target", help="Actions aimed at this agent (newest first).")
@click.option("--min-reward", type=float, help="Actions with reward >= this, best first.")
@click.option("--steps", help="Step range START:END (oldest first).")
@click.option("--relative", type=int, help="The action at this position: 0 newest, -1 ...")
@click.option("--near", help="X,Y: actions within --radius of this position, nearest first.")
@click.option("--radius", type=float, default=5.0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--all-tiers", is_flag=True,
              help="Read STM and IM (the compressed IM form keeps no position: --near "
                   "finds STM actions only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@pass_stores
def query(stores: Stores, agent: str, action_type: str | None, target: str | None,
          min_reward: float | None, steps: str | None, relative: int | None,
          near: str | None, radius: float, limit: int, all_tiers: bool,
          as_json: bool) -> None:
    """Query an agent's memory: by type, target, reward, step range, relative position
    or position (exactly one of them)."""
    chosen = [n for n, v in (("--type", action_type), ("--target", target),
                             ("--min-reward", min_reward), ("--steps", steps),
                             ("--relative", relative), ("--near", near)) if v is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --type, --target, --min-reward, "
                               "--steps, --relative, --near")
    require_agent(stores, agent)
    mem = stores.memory
    ops = mem.actions
    found: list[Action | IMAction]
    if action_type is not None:
        found = tierreads.by_type(mem, agent, action_type, limit) if all_tiers \
            else list(ops.by_type(agent, action_type, limit))
    elif target is not None:
        found = tierreads.by_target(mem, agent, target, limit) if all_tiers \
            else list(ops.by_target(agent, target, limit))
    elif min_reward is not None:
        found = tierreads.high_reward(mem, agent, min_reward, limit) if all_tiers \
            else list(ops.high_reward(agent, min_reward, limit))
    elif steps is not None:
        lo, hi = _steps(steps)
        found = tierreads.history(stores.memory, agent, lo, hi, limit=limit) if all_tiers \
            else list(ops.timeline(agent, lo, hi, limit=limit))
    elif relative is not None:
        one = tierreads.relative(stores.memory, agent, relative) if all_tiers \
            else ops.relative(agent, relative)
        found = [] if one is None else [one]
    else:
        assert near is not None
        x, y = _point(near)
        found = [n.record for n in ops.near(agent, x, y, radius, limit=limit)]
    output.actions(found, as_json)
    if relative is None and len(found) >= limit:
        output.truncated(len(found), None, "actions", "raise --limit", err=as_json)


def _point(near: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in near.split(","))
    except ValueError:
        raise click.BadParameter("use X,Y", param_hint="--near") from None
    return x, y


EXPORT_FIELDS = ("simulation_id", "agent_id", "action_id", "step_number", "action_type",
                 "action_target_id", "state_before_id", "state_after_id", "resources_before",
                 "resources_after", "reward", "details", "position_x", "position_y",
                 "module_type", "module_id", "stored_at")


def _flat(a: Action, *, details_as_text: bool = True) -> dict[str, Any]:
    """A row of :data:`EXPORT_FIELDS`; ``details`` as JSON text (CSV, Parquet: a text
    column) or, for JSON lines, as the JSON value itself (never escaped twice)."""
    d = a.model_dump(mode="json")
    pos = d.pop("position")
    d["position_x"], d["position_y"] = (pos or (None, None))
    if details_as_text and d["details"] is not None:
        d["details"] = json.dumps(d["details"], ensure_ascii=False)
    d.pop("embedding", None)
    return {k: d.get(k) for k in EXPORT_FIELDS}


class _Sink:
    """Writes rows of :data:`EXPORT_FIELDS` to a file in one format."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        self._parquet: Any = None
        if fmt == "parquet":
            try:
                self._pa = importlib.import_module("pyarrow")
                self._pq = importlib.import_module("pyarrow.parquet")
            except ImportError:
                raise click.UsageError('--format parquet needs pyarrow, an optional extra: '
                                       'pip install "agentmem[parquet]"') \
                    from None
            self._bin: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        else:
            self._text: TextIO = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            if fmt == "csv":
                self._csv = csv.DictWriter(self._text, fieldnames=EXPORT_FIELDS)
                self._csv.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.fmt == "csv":
            self._csv.writerows(rows)
        elif self.fmt == "jsonl":
            self._text.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            table = self._pa.Table.from_pylist(rows, schema=_arrow_schema(self._pa))
            if self._parquet is None:
                self._parquet = self._pq.ParquetWriter(self._bin, table.schema)
            self._parquet.write_table(table)

    def close(self) -> None:
        if self.fmt == "parquet":
            if self._parquet is not None:
                self._parquet.close()
            self._bin.close()
        else:
            self._text.close()


@click.command()
@click.argument("simulation")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]),
              default="csv", show_default=True)
@click.option("--output", "-o", "out", type=click.Path(dir_okay=False), required=True)
@click.option("--sync/--no-sync", default=True, show_default=True,
              help="Archive what Redis holds first, so the file has every action.")
@click.option("--chunk", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Rows read at a time.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_stores
def export(stores: Stores, simulation: str, fmt: str, out: str, sync: bool,
           chunk: int, as_json: bool) -> None:
    """Write a simulation's actions to CSV, JSON lines or Parquet, streamed.

    An unknown simulation, or one with no archived rows (with --no-sync), exits with
    an error and writes no file.
    """
    require_simulation(stores, simulation)
    stores.create = sync  # the archive --sync fills may be new; never without it
    archived = archive_to_sql(stores.memory, stores.archive, simulation) if sync else 0
    total = stores.archive.count(simulation) if stores.has_archive() else 0
    if not total:
        raise Empty(f"nothing to export: the archive has no rows of {simulation!r}"
                    + ("" if sync else " (--no-sync: what Redis holds was not archived)"))
    sink = _Sink(Path(out), fmt)
    try:
        with output.progress(total, "exporting") as bar:
            after: int | None = None
            while True:
                rows = stores.archive.read_rows(simulation, after=after, limit=chunk)
                if not rows:
                    break
                after = rows[-1][0]
                sink.write([_flat(a, details_as_text=fmt != "jsonl") for _, a in rows])
                bar.update(len(rows))
    finally:
        sink.close()
    if as_json:
        output.json_object({"simulation": simulation, "rows": total, "archived": archived,
                            "format": fmt, "output": out})
    else:
        click.echo(f"{total} actions of {simulation} written to {out}")


def _arrow_schema(pa: Any) -> Any:
    ints = {"step_number", "stored_at"}
    floats = {"resources_before", "resources_after", "reward", "position_x", "position_y"}
    return pa.schema([(n, pa.int64() if n in ints else pa.float64() if n in floats
                       else pa.string()) for n in EXPORT_FIELDS])


COMMANDS = (stats, inspect, query, export)
