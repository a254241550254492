"""The main job: ``demo``; and ``report`` (charts of a simulation)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import click

from agentmem.app.report import file_stem
from agentmem.cli import output
from agentmem.cli.inspecting import require_simulation
from agentmem.cli.stores import ARCHIVE_ENV, REDIS_ENV, Stores, hide
from agentmem.errors import ConfigError
from agentmem.plans.plan import command, single

pass_stores = click.make_pass_decorator(Stores)


def series_path(stores: Stores, simulation: str) -> Path:
    """Where ``demo`` keeps a run's per-step figures for ``report``: in the data
    folder's ``runs/``, one file per simulation and stores. The name is the simulation
    id (its characters other than letters, digits, ``_``, ``.`` and ``-`` as ``_``);
    a short hash of the id and of the Redis and archive URLs given is added when a
    character was replaced, the name would be hidden or long, or the stores are not
    the embedded default's (so that a run into other stores keeps its own file)."""
    stem = file_stem(simulation)
    key = [simulation, *(hide(u) for u in (stores.redis_url or os.environ.get(REDIS_ENV),
                                            stores.archive_url or os.environ.get(ARCHIVE_ENV))
                         if u)]
    if len(key) > 1 or stem != simulation or stem.startswith(".") or len(stem) > 100:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:12]
        stem = f"{stem.lstrip('.')[:100]}-{digest}"
    return stores.folder / "runs" / f"{stem}.json"


@click.command()
@click.option("--agents", default=50, show_default=True, help="Agents on the grid.")
@click.option("--steps", default=200, show_default=True, help="Simulation steps.")
@click.option("--seed", default=0, show_default=True)
@click.option("--simulation-id", default="demo", show_default=True)
@click.option("--agent-prefix", default="agent_", show_default=True,
              help="Agent ids are this prefix and a number.")
@click.option("--reset", is_flag=True,
              help="Embedded default only: empty the data folder's Valkey and archive first.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_stores
def demo(stores: Stores, agents: int, steps: int, seed: int, simulation_id: str,
         agent_prefix: str, reset: bool, as_json: bool) -> None:
    """Run an agent-based simulation that logs every action through agentmem
    (dual-write to Redis and the archive, memory tiers), then print a summary.

    A second run into the same stores needs --reset, or another --simulation-id and
    --agent-prefix.
    """
    from agentmem.app.demo import DemoConfig, run_demo

    config = DemoConfig(agents=agents, steps=steps, seed=seed, simulation_id=simulation_id,
                        agent_prefix=agent_prefix)
    stores.create = True  # the one command that makes a new store
    if reset:
        if not stores.embedded or stores.archive_url:
            raise click.UsageError("--reset empties only the embedded default; with your own "
                                   "servers use another --simulation-id and --agent-prefix")
        (stores.folder / "archive.db").unlink(missing_ok=True)
        stores.memory.runner.run(single(command("FLUSHDB"), lambda raw: raw))
    path = series_path(stores, simulation_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    memory, archive = stores.memory, stores.archive
    with output.progress(steps, f"{agents} agents x {steps} steps") as bar:
        done = [0]

        def progress(step: int, total: int) -> None:
            bar.update(step - done[0])
            done[0] = step

        try:
            summary = run_demo(memory, archive, config, progress=progress, series_path=path)
        except ConfigError as exc:
            if "already holds" not in str(exc):
                raise
            raise ConfigError(f"{exc}. `agentmem demo --reset` starts over (embedded default), "
                              "or give --simulation-id and --agent-prefix") from None
    result: dict[str, Any] = summary.to_dict()
    result["stores"] = stores.describe()
    if as_json:
        output.json_object(result)
        return
    _print_summary(result)


def _print_summary(s: dict[str, Any]) -> None:
    flat = {k: v for k, v in s.items() if not isinstance(v, dict | list)}
    output.pairs("demo", flat)
    for k, v in s.items():
        if isinstance(v, dict):
            output.pairs(k, v)
    queries = s.get("queries")
    if isinstance(queries, list) and queries:
        click.secho("example queries", bold=True)
        output.table(queries, list(queries[0]))


@click.command()
@click.argument("simulation")
@click.option("--out", "folder", type=click.Path(file_okay=False), default="agentmem-report",
              show_default=True, help="Folder for the PNG files.")
@click.option("--json", "as_json", is_flag=True, help="Print the file list as JSON.")
@pass_stores
def report(stores: Stores, simulation: str, folder: str, as_json: bool) -> None:
    """Write PNG charts of a simulation: action mix over steps, rewards by type,
    memory per tier over the run (when the run was a `demo`)."""
    from agentmem.app.report import write_report

    require_simulation(stores, simulation)
    path = series_path(stores, simulation)
    files = write_report(stores.memory, stores.archive, simulation, Path(folder),
                         series_path=path if path.exists() else None)
    if as_json:
        output.json_object({"files": [str(f) for f in files]})
    else:
        for f in files:
            click.echo(str(f))


COMMANDS = (demo, report)
