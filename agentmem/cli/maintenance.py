"""Commands that change the stores: ``check``/``repair``, ``sync``, ``maintain``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from typing import Any

import click

from agentmem import integrity
from agentmem.cli import output
from agentmem.cli.exits import BUSY, FINDINGS, NotFound
from agentmem.cli.inspecting import require_simulation
from agentmem.cli.stores import Stores
from agentmem.dualwrite.outbox import LOCK_MS, drain
from agentmem.dualwrite.sync import archive_to_sql, load_from_sql
from agentmem.plans.plan import command, single
from agentmem.tiers.maintenance import DEFAULT_IM_TTL, MaintainReport, TierPolicy, Tiers

pass_stores = click.make_pass_decorator(Stores)


def _report(rep: integrity.IntegrityReport, as_json: bool) -> None:
    if as_json:
        output.json_object({"clean": rep.clean, "spec_clean": rep.spec_clean,
                            "unindexed": rep.unindexed, "total": rep.total,
                            "repaired": rep.repaired,
                            "orphans": rep.orphans, "missing": rep.missing,
                            "counters": rep.counters, "samples": rep.samples,
                            "keys_scanned": rep.keys_scanned,
                            "hashes_checked": rep.hashes_checked})
    else:
        click.echo(str(rep))
        if rep.unindexed and not rep.repaired:
            click.echo(f"  {rep.unindexed} entries missing from agentmem's radius-search "
                       "grids only: data written by other code (e.g. the specification's "
                       "store_agent_action); `agentmem repair` adds them")


def _walk(stores: Stores, fix: bool, batch: int, agents: tuple[str, ...]
          ) -> integrity.IntegrityReport:
    """check or repair, with a progress bar of the keys scanned (of DBSIZE)."""
    memory = stores.memory
    cluster = bool(getattr(memory.runner, "cluster", False))
    size = 0 if cluster else memory.runner.run(single(command("DBSIZE"), int))
    run = integrity.repair if fix else integrity.check
    with output.progress(max(size, 1), "repairing" if fix else "checking") as bar:
        done = [0]

        def progress(keys: int) -> None:
            bar.update(min(keys, size) - done[0])
            done[0] = min(keys, size)

        rep = run(memory, batch=batch, agent_ids=list(agents) or None, progress=progress)
        bar.update(max(size - done[0], 0))
        return rep


_batch = click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True,
                      help="Keys and entries per step.")


@click.command()
@_batch
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option("--strict", is_flag=True,
              help="Also fail on entries missing from agentmem's own grids (data written "
                   "by the specification's code lacks them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def check(stores: Stores, batch: int, agents: tuple[str, ...], strict: bool,
          as_json: bool) -> None:
    """Report orphaned index entries, hashes missing from indices and wrong counters.

    Exit status 1 when something is wrong by the specification's layout. Entries
    missing from agentmem's radius-search grids only (data written by the
    specification's own code) are reported but fail only with --strict.
    """
    rep = _walk(stores, False, batch, agents)
    _report(rep, as_json)
    if not (rep.clean if strict else rep.spec_clean):
        sys.exit(FINDINGS.code)


@click.command()
@_batch
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def repair(stores: Stores, batch: int, agents: tuple[str, ...], as_json: bool) -> None:
    """Fix what `check` finds; print what was fixed."""
    _report(_walk(stores, True, batch, agents), as_json)


@click.command()
@click.argument("simulation")
@click.option("--to", "direction", type=click.Choice(["sql", "redis", "both"]),
              default="sql", show_default=True,
              help="sql: archive what Redis holds; redis: load the archive into Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def sync(stores: Stores, simulation: str, direction: str, as_json: bool) -> None:
    """Sync a simulation between Redis and the archive (idempotent).

    It may create the archive (--to sql) or fill an empty Redis (--to redis); an
    unknown simulation exits with status 8.
    """
    if direction == "redis":  # from an existing archive into Redis, which may be new
        if not stores.archive.count(simulation):
            raise NotFound(f"unknown simulation {simulation!r}: the archive has no rows "
                           "of it")
    else:  # from an existing Redis into the archive, which may be new
        require_simulation(stores, simulation)
    stores.create = True
    out: dict[str, Any] = {"simulation": simulation}
    if direction in ("sql", "both"):
        with output.progress(1, "archiving") as bar:
            out["archived"] = archive_to_sql(stores.memory, stores.archive, simulation,
                                             progress=_stepper(bar))
    if direction in ("redis", "both"):
        with output.progress(1, "loading") as bar:
            out["loaded"] = load_from_sql(stores.archive, stores.memory, simulation,
                                          progress=_stepper(bar))
    if as_json:
        output.json_object(out)
    else:
        output.pairs("sync", out)


def _stepper(bar: Any) -> Any:
    """A ``progress(done, total)`` callback driving ``bar``."""
    seen = [0]

    def progress(done: int, total: int) -> None:
        if getattr(bar, "length", None) != total and hasattr(bar, "length"):
            bar.length = max(total, 1)
        bar.update(done - seen[0])
        seen[0] = done

    return progress


def _add(total: MaintainReport, part: MaintainReport) -> None:
    """``part``'s counts added to ``total``'s (every count the report has), its ids and
    plan joined."""
    for f in fields(total):
        value = getattr(part, f.name)
        if type(value) is int:
            setattr(total, f.name, getattr(total, f.name) + value)
    total.refused += part.refused
    total.moving.update(part.moving)


MAINTAIN_BATCH = 200
"""Agents per maintenance call (a step of the progress bar)."""
SHOWN_IDS = 5
"""Ids per agent a human ``maintain --dry-run`` lists."""


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
@click.option("--dry-run", is_flag=True,
              help="Print what would move (per agent) and be evicted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def maintain(stores: Stores, stm_steps: int | None, stm_seconds: float | None,
             stm_capacity: int | None, im_capacity: int | None, im_ttl: int,
             importance_weight: float, now_step: int | None, agents: tuple[str, ...],
             no_archive: bool, dry_run: bool, as_json: bool) -> None:
    """Move actions STM -> IM -> archive by a tier policy (see docs/tiers.md).

    Pinned actions (`agentmem pin`) stay where they are.
    """
    policy = TierPolicy(stm_steps=stm_steps, stm_seconds=stm_seconds,
                        stm_capacity=stm_capacity, im_capacity=im_capacity,
                        im_ttl=im_ttl or None, importance_weight=importance_weight)
    memory = stores.memory  # an existing Redis; the archive it fills may be new
    stores.create = True
    archive = None if no_archive or dry_run else stores.archive
    tiers = Tiers(memory, policy, archive=archive)
    chosen = list(agents) or tiers.agents()
    rep = MaintainReport(dry_run=dry_run)
    with output.progress(max(len(chosen), 1), "planning" if dry_run else "maintaining") as bar:
        for start in range(0, len(chosen), MAINTAIN_BATCH):
            part = chosen[start:start + MAINTAIN_BATCH]
            run = tiers.plan if dry_run else tiers.maintain
            _add(rep, run(part, now_step=now_step))
            bar.update(len(part))
    result = asdict(rep)
    if as_json:
        output.json_object(result)
        return
    moving = result.pop("moving")
    output.pairs("maintain (dry run: nothing changed)" if dry_run else "maintain", result)
    if dry_run and moving:
        click.secho("would move STM -> IM", bold=True)
        for agent, ids in sorted(moving.items()):
            more = f" ... (+{len(ids) - SHOWN_IDS} more; --json lists all)" \
                if len(ids) > SHOWN_IDS else ""
            click.echo(f"  {agent}: {', '.join(ids[:SHOWN_IDS])}{more}")


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Yield a ``stop()`` that turns true at the first SIGINT or SIGTERM: the drain under
    way then ends after its chunk and releases the drain lock. A second signal
    interrupts at once (KeyboardInterrupt), which may leave the lock held until its time
    to live runs out. Only in the main thread (else signals are left alone)."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping.is_set
        return

    def handler(signum: int, frame: object) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        os.write(2, b"agentmem archive: stopping after the chunk under way "
                    b"(again to interrupt at once)\n")

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield stopping.is_set
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@click.command("archive")
@click.option("--follow", is_flag=True,
              help="Keep draining, every --every seconds, until interrupted (a worker).")
@click.option("--every", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between drains with --follow.")
@click.option("--all", "include_live", is_flag=True,
              help="Also the outboxes of running writers (safe: no row is written twice).")
@click.option("--wait", type=click.FloatRange(min=0), default=LOCK_MS / 1000 + 5,
              show_default=True,
              help="Seconds to wait for the drain lock while another drainer holds it (one "
                   "that was killed holds it for up to 60 s). Not with --follow, which "
                   "tries again every --every seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per drain).")
@pass_stores
def archive(stores: Stores, follow: bool, every: float, include_live: bool, wait: float,
            as_json: bool) -> None:
    """Archive what Redis acknowledged and no writer archived: the outboxes of writers
    that stopped (see docs/durability.md).

    The first Ctrl-C (SIGINT) or SIGTERM stops it after the chunk under way, the drain
    lock released; a second one at once. Exit status 1 when an outbox listed actions
    that were gone from Redis; 12 when, run once, it could not take the drain lock
    within --wait (nothing was drained).
    """
    stores.create = True  # the archive it drains into may be new
    missing, busy = 0, False
    try:
        with _stop_on_signals() as stop:
            while not stop():
                rep = drain(stores.memory, stores.archive, include_live=include_live,
                            wait=0.0 if follow else wait, stop=stop)
                missing += len(rep.missing)
                busy = rep.busy and not follow
                if rep.read or rep.missing or not follow:
                    if as_json:
                        output.json_object(rep.as_dict())
                    else:
                        output.pairs("archive", rep.as_dict())
                if not follow:
                    break
                time.sleep(every)  # a signal does not cut it short (PEP 475): <= every
    except KeyboardInterrupt:
        pass
    if missing:
        sys.exit(FINDINGS.code)
    if busy:
        sys.exit(BUSY.code)


COMMANDS = (check, repair, sync, maintain, archive)
