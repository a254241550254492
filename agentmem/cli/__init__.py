"""The ``agentmem`` command: a thin layer over the library (see ``docs/cli.md``).

Every command takes the stores from the group's options: ``--redis-url`` (or
``$AGENTMEM_REDIS_URL``) and ``--archive-url`` (or ``$AGENTMEM_ARCHIVE_URL``);
without a Redis URL, the embedded Valkey of the data folder (``--data``,
``$AGENTMEM_DATA``, default ``./agentmem-data``) is started for the command and
stopped when it ends (:mod:`agentmem.servers.embedded`).

May import: everything; nothing imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from agentmem.cli import inspecting, maintenance, migrating, pinning, running
from agentmem.cli.exits import PIPE, failure
from agentmem.cli.stores import Stores
from agentmem.dualwrite.signals import exit_on_sigterm


class _Group(click.Group):
    """Turns every failure into a one-line message and the exit status of
    :mod:`agentmem.cli.exits`, never a traceback (closing the stores included)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            try:
                result = super().invoke(ctx)
            except BaseException:
                # close the stores (stop the embedded server) here, so that a failure or
                # Ctrl-C while closing is mapped like one of the command; the command's
                # own failure is the one told
                with contextlib.suppress(Exception):
                    _close(ctx)
                raise
            _close(ctx)
            return result
        except (click.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except click.Abort:  # click's own Ctrl-C (or end of input)
            raise failure(KeyboardInterrupt()) from None
        except BrokenPipeError:  # `agentmem query ... | head`: stop quietly
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(PIPE.code) from None
        except (Exception, KeyboardInterrupt) as exc:
            raise failure(exc) from None


def _close(ctx: click.Context) -> None:
    """Close the command's stores (again at the context's end: a no-op then)."""
    if isinstance(ctx.obj, Stores):
        ctx.obj.close()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(file_okay=False), envvar="AGENTMEM_DATA",
              help="Data folder of the embedded default (Valkey files and archive.db). "
                   "Default: ./agentmem-data.")
@click.option("--redis-url", envvar="AGENTMEM_REDIS_URL",
              help="Use this Redis/Valkey instead of the embedded server.")
@click.option("--archive-url", envvar="AGENTMEM_ARCHIVE_URL",
              help="SQLAlchemy URL or SQLite path of the archive. Default: "
                   "<data folder>/archive.db.")
@click.version_option(package_name="agentmem")
@click.pass_context
def main(ctx: click.Context, data: str | None, redis_url: str | None,
         archive_url: str | None) -> None:
    """agentmem: a fast, queryable memory of what agents did.

    Start with `agentmem demo`.
    """
    # SIGTERM (`timeout`, systemd, `kill`) unwinds like Ctrl-C, exit status 143: the
    # embedded server the command started is stopped, even while it starts
    exit_on_sigterm()
    if not os.environ.get("AGENTMEM_DEBUG"):
        # the command's own one-line error says what failed: the library's warnings
        # (e.g. a dual writer journaling while the server is away) are not printed
        log = logging.getLogger("agentmem")
        quiet = logging.NullHandler()
        log.addHandler(quiet)
        was, log.propagate = log.propagate, False

        def restore() -> None:
            log.removeHandler(quiet)
            log.propagate = was

        ctx.call_on_close(restore)
    stores = Stores(data=data, redis_url=redis_url, archive_url=archive_url)
    ctx.obj = stores
    ctx.call_on_close(stores.close)


for command in (*running.COMMANDS, *inspecting.COMMANDS, *maintenance.COMMANDS,
                *pinning.COMMANDS, *migrating.COMMANDS):
    main.add_command(command)

__all__ = ["main"]
