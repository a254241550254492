"""The one exception hierarchy of agentmem.

Every error agentmem raises on purpose derives from :class:`AgentMemError`, so
``except agentmem.AgentMemError`` catches all of them. Bad input also derives
from :class:`ValueError` and an unreachable server from :class:`ConnectionError`,
so code written against the builtin families keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence


class AgentMemError(Exception):
    """Root of every agentmem exception."""


class InvalidInput(AgentMemError, ValueError):
    """A value cannot be stored as given; nothing was written."""


class InvalidId(InvalidInput):
    """An id (agent, action, simulation, target, type) cannot be part of a key."""


class SchemaError(AgentMemError, TypeError):
    """A model declaration (key pattern, index, field hint) is inconsistent."""


class ConfigError(AgentMemError, ValueError):
    """A connection URL or an option is malformed or unsupported."""


class LayoutError(AgentMemError):
    """A key layout version is unknown to this version of agentmem."""


class BackendError(AgentMemError):
    """The storage server answered with an error."""


class Unavailable(BackendError, ConnectionError):
    """The storage server cannot be reached (refused, reset, timed out); the same
    call may succeed later (a dual writer journals the action and replays it)."""


class RedisLostData(Unavailable):
    """Redis restarted (or another writer seeded the retired marks again) since a dual
    writer seeded them: the restart guard refused the write before anything of it was
    sent. The writer seeds the marks again before its next write (``docs/durability.md``);
    with ``strict=True`` this reaches the caller, and the same call may succeed at once.
    (A script call refused for the marks, without a reconnection, fails its records with
    a ``WriteError`` reason that starts with ``UNSEEDED`` instead: the calls before it may
    have been stored.)"""


class Refused(BackendError):
    """The storage server turned this client away for a reason waiting does not fix:
    credentials, an ACL refusal, a TLS certificate that does not verify, a protocol
    error. Raised at once; never journaled."""


class Unsupported(AgentMemError):
    """The server or deployment lacks what this call needs (e.g. the Query Engine's
    search module); the message says what to install or use instead."""


class NotFound(AgentMemError, LookupError):
    """What an operation needs does not exist: the record of an ``update``; for the CLI,
    the store, simulation, agent or action a command names (exit status 8)."""


class NotRun(AgentMemError):
    """A batched operation's result was asked for before its batch ran, or its batch
    did not run (its ``with`` block raised)."""


class DecodeError(AgentMemError):
    """Stored data does not decode into the declared model."""


class WriteError(AgentMemError):
    """Some records of a write were refused by the server; each is all-or-nothing.

    ``stored`` holds the ids that were written, ``failed`` maps the position of
    every refused record in the input to the server's reason.
    """

    def __init__(self, message: str, *, stored: Sequence[str], failed: dict[int, str]) -> None:
        super().__init__(message)
        self.stored = list(stored)
        self.failed = dict(failed)


class DuplicateId(WriteError):
    """A record with an explicit id already exists; it was not overwritten."""
