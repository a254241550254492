"""PNG charts of a simulation's actions and memory (see ``docs/demo.md``).

``write_report(memory, archive, simulation_id, folder, series_path=...)`` draws,
with matplotlib's Agg renderer (no display, no pyplot state):

- ``{sim}-action-mix.png``: actions per type per step bucket, from the archive;
- ``{sim}-rewards.png``: the reward distribution of each action type (box plot),
  from the archive;
- ``{sim}-memory-tiers.png``: actions per tier and Redis ``used_memory`` over
  the run, from the series JSON that :func:`agentmem.app.demo.run_demo` writes
  (skipped when there is none);
- ``{sim}-tiers-now.png``: STM and IM actions per agent now, read from Redis
  (skipped when ``memory`` is ``None``).

It also holds the measurements the demo takes: :func:`tier_sizes` /
:func:`tier_counts` (ZCARD of the STM and IM timelines), :func:`used_memory`
and :func:`time_queries` (example queries with their latency).
matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import importlib
import json
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentmem.backends.masters import used_memory
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive, agent_actions
from agentmem.errors import AgentMemError, BackendError, ConfigError, InvalidInput
from agentmem.plans.plan import Plan, command, every_reply
from agentmem.tiers import reads as tierreads

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["QueryTiming", "file_stem", "load_series", "tier_counts", "tier_sizes",
           "time_queries", "used_memory", "write_report"]

_ORDER = ("move", "gather", "share", "attack", "reproduce", "defend", "pass")
"""The usual order of the action types in the charts (AgentFarm's, as the demo logs them)."""
_BUCKETS = 40  # step buckets of the action-mix chart at most
_AGENTS_SHOWN = 60  # bars of the tiers-now chart at most
_FILE_CHARS = frozenset("0123456789_.-")  # kept in file names, with letters


def tier_sizes(memory: Memory, agent_ids: Sequence[str]) -> list[tuple[int, int]]:
    """``(STM, IM)`` actions of each agent: ZCARD of its two timelines (one round trip)."""
    layout = memory.actions.layout
    calls = [command("ZCARD", layout.key(family, agent_id=a))
             for a in agent_ids for family in ("timeline", "im_timeline")]

    def parse(replies: list[Any]) -> list[int]:
        return [int(n) for n in every_reply(replies)]

    sizes = memory.runner.run(Plan(calls, parse)) if calls else []
    return list(zip(sizes[0::2], sizes[1::2], strict=True))


def tier_counts(memory: Memory, agent_ids: Sequence[str]) -> tuple[int, int]:
    """``(STM, IM)`` actions of the agents, summed."""
    sizes = tier_sizes(memory, agent_ids)
    return sum(s for s, _ in sizes), sum(i for _, i in sizes)


@dataclass
class QueryTiming:
    """One example query: what was called, its median latency over 5 calls, results."""

    name: str
    call: str
    latency_ms: float
    results: int


def _timed(name: str, call: str, fn: Callable[[], Any]) -> QueryTiming:
    times, result = [], None
    for _ in range(5):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    n = len(result) if isinstance(result, list | dict) else int(result is not None)
    return QueryTiming(name, call, round(statistics.median(times), 3), n)


def time_queries(memory: Memory, agent_id: str, simulation_id: str, step: int
                 ) -> list[QueryTiming]:
    """Seven example queries on one agent and on one step of a simulation, each timed.

    STM queries (``by_type``, ``high_reward``, ``relative``, ``at_step``,
    ``type_counts``) and reads across STM and IM (``tierreads.recent``,
    ``tierreads.history``); each is called 5 times and its median latency kept.
    """
    a, sim, last = agent_id, simulation_id, step
    acts = memory.actions
    return [
        _timed("by_type", f"actions.by_type({a!r}, 'gather', limit=10)",
               lambda: acts.by_type(a, "gather", limit=10)),
        _timed("high_reward", f"actions.high_reward({a!r}, min_reward=0.5, limit=10)",
               lambda: acts.high_reward(a, min_reward=0.5, limit=10)),
        _timed("recent_across_tiers", f"tierreads.recent(memory, {a!r}, 20)",
               lambda: tierreads.recent(memory, a, 20)),
        _timed("history_across_tiers", f"tierreads.history(memory, {a!r})",
               lambda: tierreads.history(memory, a)),
        _timed("relative", f"actions.relative({a!r}, -1)", lambda: acts.relative(a, -1)),
        _timed("at_step", f"actions.at_step({sim!r}, {last})", lambda: acts.at_step(sim, last)),
        _timed("type_counts", f"actions.type_counts({sim!r})", lambda: acts.type_counts(sim)),
    ]


def _rows(archive: Archive, simulation_id: str) -> list[tuple[int, str, str, float | None]]:
    """``(step, agent, type, reward)`` of every archived action of the simulation."""
    c = agent_actions.c
    stmt = (agent_actions.select()
            .with_only_columns(c.step_number, c.agent_id, c.action_type, c.reward)
            .where(c.simulation_id == simulation_id))
    try:
        with archive.engine.connect() as conn:
            return [(int(s), str(a), str(t), None if r is None else float(r))
                    for s, a, t, r in conn.execute(stmt)]
    except AgentMemError:
        raise
    except Exception as exc:  # SQLAlchemy's errors: the archive cannot be read
        raise BackendError(f"cannot read the archive {archive.location}: {exc}") from exc


def _types(found: Sequence[str]) -> list[str]:
    """Action types: the demo's in their usual order, then any others sorted."""
    present = set(found)
    return [t for t in _ORDER if t in present] + sorted(present - set(_ORDER))


REPORT_EXTRA = 'pip install "agentmem[report]"'


def _matplotlib(module: str) -> Any:
    """Import a matplotlib module when a chart is drawn (importing it takes a while);
    without matplotlib (an optional extra), a ConfigError that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the PNG report needs matplotlib, an optional extra: "
                          f"{REPORT_EXTRA}") from None


def _figure(width: float, height: float) -> Figure:
    figure: type[Figure] = _matplotlib("matplotlib.figure").Figure
    return figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    canvas = _matplotlib("matplotlib.backends.backend_agg").FigureCanvasAgg
    canvas(fig)  # the Agg renderer: no display, no pyplot state
    fig.savefig(path, format="png", dpi=100)
    return path


def _action_mix(rows: Sequence[tuple[int, str, str, float | None]], sim: str,
                path: Path) -> Path:
    first, last = min(r[0] for r in rows), max(r[0] for r in rows)
    width = max(1, math.ceil((last - first + 1) / _BUCKETS))
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for step, _, kind, _ in rows:
        counts[kind][(step - first) // width] += 1
    buckets = list(range((last - first) // width + 1))
    types = _types(list(counts))
    fig = _figure(10, 5)
    ax = fig.add_subplot()
    ax.stackplot([first + b * width for b in buckets],
                 [[counts[t][b] for b in buckets] for t in types], labels=types, step="post")
    ax.set_title(f"Action mix over steps: {sim}")
    ax.set_xlabel(f"step (buckets of {width})")
    ax.set_ylabel("actions per bucket")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _rewards(rows: Sequence[tuple[int, str, str, float | None]], sim: str,
             path: Path) -> Path:
    by_type: dict[str, list[float]] = defaultdict(list)
    for _, _, kind, reward in rows:
        if reward is not None:
            by_type[kind].append(reward)
    types = _types(list(by_type))
    exponent = _scale(by_type.values())
    fig = _figure(10, 5)
    ax = fig.add_subplot()
    if types:
        half = exponent // 2  # in two steps: 10.0**-324 is 0.0, 10.0**309 overflows
        ax.boxplot([[r / 10.0**half / 10.0**(exponent - half) for r in by_type[t]]
                    for t in types], showmeans=True)
        ax.set_xticks(range(1, len(types) + 1),
                      [f"{t}\n(n={len(by_type[t])})" for t in types])
    else:
        ax.text(0.5, 0.5, "no rewards recorded", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(f"Reward by action type: {sim}")
    ax.set_ylabel("reward" if not exponent else f"reward (x 1e{exponent})")
    return _save(fig, path)


def _scale(rewards: Iterable[Sequence[float]]) -> int:
    """The power of ten the rewards are drawn in: 0, or for magnitudes beyond 1e100 (or
    below 1e-100) the one that brings the largest near 1, so that the box plot's
    sums, spreads and axis limits stay finite and regular (rewards of 1e308 and
    -1e308 together overflow them)."""
    big = max((abs(r) for values in rewards for r in values), default=0.0)
    if big == 0.0 or 1e-100 <= big <= 1e100:
        return 0
    return math.floor(math.log10(big))


def load_series(path: str | Path, simulation_id: str | None = None) -> list[dict[str, Any]]:
    """The per-maintenance series of a file written by ``run_demo(series_path=...)``.

    Raises :class:`InvalidInput` when the file is not such a file, or holds
    another simulation than ``simulation_id`` (when given).
    """
    try:
        data = json.loads(Path(path).read_text())
        series = data["series"]
        sim = data["simulation_id"]
        points = [{k: int(p[k]) for k in ("step", "stm", "im", "archived", "used_memory")}
                  for p in series]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a demo series file: {exc!r}") from None
    if simulation_id is not None and sim != simulation_id:
        raise InvalidInput(f"{path} holds simulation {sim!r}, not {simulation_id!r}")
    return points


def _memory_tiers(points: Sequence[dict[str, Any]], sim: str, path: Path) -> Path:
    steps = [p["step"] for p in points]
    fig = _figure(10, 7)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for key, label in (("stm", "short-term (STM)"), ("im", "intermediate (IM)"),
                       ("archived", "archive (SQL rows)")):
        top.plot(steps, [p[key] for p in points], marker="o", markersize=3, label=label)
    top.set_title(f"Memory per tier over the run: {sim}")
    top.set_ylabel("actions")
    top.legend(loc="upper left")
    bottom.plot(steps, [p["used_memory"] / 2**20 for p in points], color="tab:red",
                marker="o", markersize=3)
    bottom.set_ylabel("Redis used_memory (MiB)")
    bottom.set_xlabel("step (sampled after each maintenance)")
    return _save(fig, path)


def _tiers_now(memory: Memory, agent_ids: Sequence[str], sim: str, path: Path) -> Path:
    sizes = tier_sizes(memory, agent_ids)
    stm, im = [s for s, _ in sizes], [i for _, i in sizes]
    xs = range(len(agent_ids))
    fig = _figure(10, 5)
    ax = fig.add_subplot()
    ax.bar(xs, stm, label="short-term (STM)")
    ax.bar(xs, im, bottom=stm, label="intermediate (IM)")
    ax.set_xticks(list(xs), list(agent_ids), rotation=90, fontsize=6)
    shown = "" if len(agent_ids) < _AGENTS_SHOWN else f" (first {_AGENTS_SHOWN} agents)"
    ax.set_title(f"Actions in Redis per agent now{shown}: {sim}")
    ax.set_ylabel("actions")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def file_stem(simulation_id: str) -> str:
    """``simulation_id`` for file names: letters (of any alphabet), digits, ``_``, ``.``
    and ``-`` kept, any other character (``/`` included) as ``_``."""
    return "".join(c if c.isalpha() or c in _FILE_CHARS else "_" for c in simulation_id)


def write_report(memory: Memory | None, archive: Archive, simulation_id: str,
                 folder: str | Path, *, series_path: str | Path | None = None) -> list[Path]:
    """Write the PNG charts of ``simulation_id`` into ``folder`` (created when missing).

    Returns the paths written. The memory-per-tier chart needs ``series_path``
    to name an existing series file (else it is skipped); the tiers-now chart
    needs ``memory``. Raises :class:`InvalidInput` when the archive holds no
    action of the simulation.
    """
    rows = _rows(archive, simulation_id)
    if not rows:
        raise InvalidInput(f"the archive {archive.location} holds no action of simulation "
                           f"{simulation_id!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(simulation_id)
    written = [_action_mix(rows, simulation_id, out / f"{stem}-action-mix.png"),
               _rewards(rows, simulation_id, out / f"{stem}-rewards.png")]
    if series_path is not None and Path(series_path).is_file():
        points = load_series(series_path, simulation_id)
        if points:
            written.append(_memory_tiers(points, simulation_id,
                                         out / f"{stem}-memory-tiers.png"))
    if memory is not None:
        agents = sorted({r[1] for r in rows}, key=lambda a: (len(a), a))[:_AGENTS_SHOWN]
        written.append(_tiers_now(memory, agents, simulation_id,
                                  out / f"{stem}-tiers-now.png"))
    return written
