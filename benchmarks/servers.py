"""The server a benchmark writes to: ``--url`` (an existing server, whose database the
benchmark flushes: ``--flush`` says so) or a private ``redis-server`` it starts."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from agentmem.servers.local import LocalServer


def add_server_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--url", help="an existing server (its database is flushed: --flush)")
    ap.add_argument("--flush", action="store_true")


@contextlib.contextmanager
def target_server(ap: argparse.ArgumentParser, args: argparse.Namespace
                  ) -> Iterator[tuple[str, str]]:
    """(url, what it is): the given server, or a private one for the block. ``--url``
    without ``--flush`` is refused (exit status 2): every round writes into a flushed
    database."""
    if args.url:
        if not args.flush:
            ap.error("--url needs --flush: every round writes into a flushed database")
        yield args.url, "given server"
        return
    with LocalServer("redis") as srv:
        yield srv.url, "private redis-server"
