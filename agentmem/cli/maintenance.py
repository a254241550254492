"""Commands that change the stores: ``check``/``repair``, ``sync``, ``maintain``."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

import click

from agentmem import integrity
from agentmem.cli import output
from agentmem.cli.stores import Stores
from agentmem.dualwrite.outbox import drain
from agentmem.dualwrite.sync import archive_to_sql, load_from_sql
from agentmem.tiers.maintenance import DEFAULT_IM_TTL, TierPolicy, Tiers

pass_stores = click.make_pass_decorator(Stores)


def _report(rep: integrity.IntegrityReport, as_json: bool) -> None:
    if as_json:
        output.json_object({"clean": rep.clean, "total": rep.total, "repaired": rep.repaired,
                            "orphans": rep.orphans, "missing": rep.missing,
                            "counters": rep.counters, "samples": rep.samples,
                            "keys_scanned": rep.keys_scanned,
                            "hashes_checked": rep.hashes_checked})
    else:
        click.echo(str(rep))


@click.command()
@click.option("--batch", default=1000, show_default=True, help="Keys and entries per step.")
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def check(stores: Stores, batch: int, agents: tuple[str, ...], as_json: bool) -> None:
    """Report orphaned index entries, hashes missing from indices and wrong counters.

    Exit status 1 when something is wrong.
    """
    rep = integrity.check(stores.memory, batch=batch, agent_ids=list(agents) or None)
    _report(rep, as_json)
    if not rep.clean:
        sys.exit(1)


@click.command()
@click.option("--batch", default=1000, show_default=True, help="Keys and entries per step.")
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def repair(stores: Stores, batch: int, agents: tuple[str, ...], as_json: bool) -> None:
    """Fix what `check` finds; print what was fixed."""
    _report(integrity.repair(stores.memory, batch=batch, agent_ids=list(agents) or None),
            as_json)


@click.command()
@click.argument("simulation")
@click.option("--to", "direction", type=click.Choice(["sql", "redis", "both"]),
              default="sql", show_default=True,
              help="sql: archive what Redis holds; redis: load the archive into Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def sync(stores: Stores, simulation: str, direction: str, as_json: bool) -> None:
    """Sync a simulation between Redis and the archive (idempotent)."""
    out: dict[str, Any] = {"simulation": simulation}
    if direction in ("sql", "both"):
        out["archived"] = archive_to_sql(stores.memory, stores.archive, simulation)
    if direction in ("redis", "both"):
        out["loaded"] = load_from_sql(stores.archive, stores.memory, simulation)
    if as_json:
        output.json_object(out)
    else:
        output.pairs("sync", out)


@click.command()
@click.option("--stm-steps", type=int, help="Keep the newest N steps in short-term memory.")
@click.option("--stm-seconds", type=float, help="Keep actions younger than this in STM.")
@click.option("--stm-capacity", type=int, help="At most N actions per agent in STM.")
@click.option("--im-capacity", type=int, help="At most N actions per agent in IM.")
@click.option("--im-ttl", type=int, default=DEFAULT_IM_TTL, show_default=True,
              help="Seconds an IM entry lives without maintenance (0: no TTL).")
@click.option("--importance-weight", type=float, default=0.0, show_default=True)
@click.option("--now-step", type=int, help="The simulation's current step.")
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option("--no-archive", is_flag=True, help="Evict from IM without archiving.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def maintain(stores: Stores, stm_steps: int | None, stm_seconds: float | None,
             stm_capacity: int | None, im_capacity: int | None, im_ttl: int,
             importance_weight: float, now_step: int | None, agents: tuple[str, ...],
             no_archive: bool, as_json: bool) -> None:
    """Move actions STM -> IM -> archive by a tier policy (see docs/tiers.md)."""
    policy = TierPolicy(stm_steps=stm_steps, stm_seconds=stm_seconds,
                        stm_capacity=stm_capacity, im_capacity=im_capacity,
                        im_ttl=im_ttl or None, importance_weight=importance_weight)
    tiers = Tiers(stores.memory, policy, archive=None if no_archive else stores.archive)
    rep = tiers.maintain(list(agents) or None, now_step=now_step)
    if as_json:
        output.json_object(asdict(rep))
    else:
        output.pairs("maintain", asdict(rep))


@click.command("archive")
@click.option("--follow", is_flag=True,
              help="Keep draining, every --every seconds, until interrupted (a worker).")
@click.option("--every", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between drains with --follow.")
@click.option("--all", "include_live", is_flag=True,
              help="Also the outboxes of running writers (safe: no row is written twice).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per drain).")
@pass_stores
def archive(stores: Stores, follow: bool, every: float, include_live: bool,
            as_json: bool) -> None:
    """Archive what Redis acknowledged and no writer archived: the outboxes of writers
    that stopped (see docs/durability.md).

    Exit status 1 when an outbox listed actions that were gone from Redis.
    """
    missing = 0
    try:
        while True:
            rep = drain(stores.memory, stores.archive, include_live=include_live)
            missing += len(rep.missing)
            if rep.read or rep.missing or not follow:
                if as_json:
                    output.json_object(rep.as_dict())
                else:
                    output.pairs("archive", rep.as_dict())
            if not follow:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    if missing:
        sys.exit(1)


COMMANDS = (check, repair, sync, maintain, archive)
