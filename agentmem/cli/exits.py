"""The exit statuses of the ``agentmem`` command, in one place (the table of
``docs/cli.md`` is checked against :data:`EXITS` by ``tests/cli``), and the one-line
message each failure becomes."""

from __future__ import annotations

import os
import traceback
from typing import NamedTuple

import click

from agentmem.errors import (
    AgentMemError,
    BackendError,
    ConfigError,
    DecodeError,
    InvalidInput,
    LayoutError,
    NotFound,  # also a store, simulation, agent or action a command names that does not exist
    Refused,
    SchemaError,
    Unavailable,
    WriteError,
)

__all__ = ["EXITS", "Empty", "NotFound", "exit_for", "failure"]


class Empty(AgentMemError):
    """Nothing to do: e.g. an export that found no rows."""


class Exit(NamedTuple):
    code: int
    name: str
    meaning: str


OK = Exit(0, "ok", "success")
FINDINGS = Exit(1, "findings", "`check` found problems; `archive` found outbox entries gone "
                "from Redis")
USAGE = Exit(2, "usage", "bad options or arguments, or a value agentmem cannot store "
             "(InvalidInput)")
BAD_CONFIG = Exit(3, "config", "a malformed URL or option (ConfigError), e.g. a bad "
                  "--redis-url")
UNAVAILABLE = Exit(4, "unavailable", "the server cannot be reached, or went away during "
                   "the command (Unavailable)")
REFUSED = Exit(5, "refused", "the server refused this client: credentials, ACL, TLS "
               "(Refused)")
PERMISSION = Exit(6, "permission", "permission denied on a file or folder")
PATH = Exit(7, "path", "a file or folder cannot be created or used (not a folder, "
            "no such parent, read-only)")
NOT_FOUND = Exit(8, "not-found", "no store at the given place (read commands never create "
                 "one), or an unknown simulation, agent or action")
EMPTY = Exit(9, "empty", "nothing to do: e.g. `export` found no rows")
DATA = Exit(10, "data", "stored data agentmem cannot read: another key layout or grid "
            "cell (LayoutError), undecodable values (DecodeError)")
SERVER = Exit(11, "server-error", "the server answered with an error (BackendError), or "
              "records of a write were refused (WriteError)")
BUSY = Exit(12, "busy", "`archive` (without --follow) could not take the drain lock within "
            "--wait: another drainer holds it, or a killed one did (it expires in 60 s)")
PIPE = Exit(141, "pipe", "standard output was closed early (e.g. piped into `head`): "
            "nothing more is printed, no error message")
INTERNAL = Exit(70, "internal", "a bug in agentmem: set AGENTMEM_DEBUG=1 for the "
                "traceback, and report it")
INTERRUPTED = Exit(130, "interrupted", "interrupted (Ctrl-C)")

EXITS = (OK, FINDINGS, USAGE, BAD_CONFIG, UNAVAILABLE, REFUSED, PERMISSION, PATH,
         NOT_FOUND, EMPTY, DATA, SERVER, BUSY, INTERNAL, INTERRUPTED, PIPE)
"""Every exit status of the command."""

_BY_CLASS: tuple[tuple[type[BaseException], Exit], ...] = (
    (NotFound, NOT_FOUND), (Empty, EMPTY), (InvalidInput, USAGE), (ConfigError, BAD_CONFIG),
    (SchemaError, BAD_CONFIG), (Unavailable, UNAVAILABLE), (Refused, REFUSED),
    (LayoutError, DATA), (DecodeError, DATA), (BackendError, SERVER), (WriteError, SERVER),
    (PermissionError, PERMISSION), (OSError, PATH), (KeyboardInterrupt, INTERRUPTED),
    (AgentMemError, SERVER),
)


def exit_for(exc: BaseException) -> Exit:
    """The exit status of a failure (the first class of the table it belongs to)."""
    for cls, code in _BY_CLASS:
        if isinstance(exc, cls):
            return code
    return INTERNAL


class Failure(click.ClickException):
    """A failure as click prints it: ``Error: <kind>: <message>`` on one line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def failure(exc: BaseException) -> Failure:
    """The one-line error of ``exc`` with its exit status (``AGENTMEM_DEBUG=1`` prints
    the traceback first)."""
    code = exit_for(exc)
    if os.environ.get("AGENTMEM_DEBUG"):
        traceback.print_exception(exc)
    if code is INTERRUPTED:
        return Failure("interrupted", code.code)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, AgentMemError) and exc.filename:
        text = f"{exc.strerror or text}: {exc.filename}"
    kind = "PermissionDenied" if code is PERMISSION else type(exc).__name__
    if code is INTERNAL:
        kind = f"internal error ({type(exc).__name__})"
    return Failure(f"{kind}: {text}", code.code)
