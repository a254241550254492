"""``agentmem migrate``: the Redis key-layout revisions and the SQL archive's schema.

A thin layer over :mod:`agentmem.migrations.redis` (``upgrade``, ``downgrade``,
``current``, ``history``) and :mod:`agentmem.migrations.sql` (``sql-upgrade``,
``sql-downgrade``, ``sql-current``, ``sql-history``). See ``docs/layouts.md`` and
``docs/migrations.md``.
"""

from __future__ import annotations

import click

from agentmem.cli import output
from agentmem.cli.stores import Stores
from agentmem.migrations import redis as layouts
from agentmem.migrations import sql as schema

pass_stores = click.make_pass_decorator(Stores)

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_dry = click.option("--dry-run", is_flag=True,
                    help="Print the plan and the key counts per family; write nothing.")
_batch = click.option("--batch", default=layouts.DEFAULT_BATCH, show_default=True,
                      type=click.IntRange(min=1), help="Keys per SCAN batch (COUNT).")


@click.group()
def migrate() -> None:
    """Migrate the Redis key layout (upgrade, downgrade, current, history) or the
    SQL archive's schema (sql-upgrade, sql-downgrade, sql-current, sql-history)."""


def _report(report: layouts.MigrationReport, as_json: bool) -> None:
    if as_json:
        output.json_object(report.as_dict())
    else:
        click.echo(str(report))


@migrate.command()
@click.argument("revision", default="head")
@_dry
@_batch
@_json
@pass_stores
def upgrade(stores: Stores, revision: str, dry_run: bool, batch: int, as_json: bool) -> None:
    """Apply the key-layout revisions up to REVISION (default: head).

    head stops before the opt-in revisions 0004 (layout 3, compact hashes) and 0005
    (layout 4, the types and targets indices sorted by step): name one to apply it (0005
    applies 0004 first). A revision left unfinished by a stopped run is finished first.
    """
    with output.phased_progress() as progress:
        rep = layouts.upgrade(stores.url(), revision, dry_run=dry_run, batch=batch,
                              progress=progress)
    _report(rep, as_json)


@migrate.command()
@click.argument("revision")
@_dry
@_batch
@_json
@pass_stores
def downgrade(stores: Stores, revision: str, dry_run: bool, batch: int, as_json: bool) -> None:
    """Undo key-layout revisions until REVISION is the current one (base: 0001)."""
    with output.phased_progress() as progress:
        rep = layouts.downgrade(stores.url(), revision, dry_run=dry_run, batch=batch,
                                progress=progress)
    _report(rep, as_json)


@migrate.command()
@_json
@pass_stores
def current(stores: Stores, as_json: bool) -> None:
    """The server's revision and layout version, and any unfinished revision."""
    st = layouts.status(stores.url())
    if as_json:
        output.json_object({"revision": st.revision, "layout": st.layout,
                            "in_progress": st.in_progress})
        return
    layout = "in migration" if st.in_progress else st.layout or "1 (no key)"
    click.echo(f"revision {st.revision}, layout {layout}")
    if st.in_progress:
        click.echo(f"unfinished: {st.in_progress.get('direction')} of revision "
                   f"{st.in_progress.get('revision')}, phase {st.in_progress.get('phase', '-')}")


@migrate.command()
@_json
def history(as_json: bool) -> None:
    """Every key-layout revision, base first."""
    rows = [{"revision": r.revision, "down_revision": r.down_revision, "layout": r.layout,
             "opt_in": r.opt_in, "description": r.description} for r in layouts.history()]
    if as_json:
        output.json_lines(rows)
    else:
        output.table(rows, ["revision", "down_revision", "layout", "opt_in", "description"])


def _archive(stores: Stores) -> str:
    return stores.archive_target()


@migrate.command("sql-upgrade")
@click.argument("revision", default="head")
@click.option("--sql", "offline", is_flag=True, help="Print the SQL instead of running it.")
@_json
@pass_stores
def sql_upgrade(stores: Stores, revision: str, offline: bool, as_json: bool) -> None:
    """Upgrade the archive's schema to REVISION (default: head)."""
    stores.create = True  # the one migration that may create the archive
    _done(stores, schema.upgrade(_archive(stores), revision, sql=offline), offline, as_json)


@migrate.command("sql-downgrade")
@click.argument("revision")
@click.option("--sql", "offline", is_flag=True, help="Print the SQL instead of running it.")
@_json
@pass_stores
def sql_downgrade(stores: Stores, revision: str, offline: bool, as_json: bool) -> None:
    """Downgrade the archive's schema to REVISION (base: before 0001)."""
    _done(stores, schema.downgrade(_archive(stores), revision, sql=offline), offline, as_json)


def _done(stores: Stores, text: str | None, offline: bool, as_json: bool) -> None:
    """The SQL (--sql), else the revision the archive is at now."""
    if as_json:
        output.json_object({"sql": text} if offline else
                           {"revision": schema.current(_archive(stores))})
    else:
        click.echo(text if offline else _at(stores))


def _at(stores: Stores) -> str:
    return f"archive at revision {schema.current(_archive(stores)) or 'base (none)'}"


@migrate.command("sql-current")
@_json
@pass_stores
def sql_current(stores: Stores, as_json: bool) -> None:
    """The archive's schema revision (none: never migrated)."""
    rev = schema.current(_archive(stores))
    if as_json:
        output.json_object({"revision": rev})
    else:
        click.echo(rev or "none")


@migrate.command("sql-history")
@_json
def sql_history(as_json: bool) -> None:
    """Every revision of the archive's schema, oldest first."""
    rows = [{"revision": r.revision, "down_revision": r.down_revision,
             "description": r.description} for r in schema.history()]
    if as_json:
        output.json_lines(rows)
    else:
        output.table(rows, ["revision", "down_revision", "description"])


COMMANDS = (migrate,)
