"""What a redis-py exception means for agentmem: wait, or stop.

:class:`~agentmem.errors.Unavailable` means the server could not be reached
(refused connection, reset, timeout): the same call may succeed later, so a
dual writer journals the action and replays it. :class:`~agentmem.errors.Refused`
means the server or the connection turned this client away for a reason that
waiting does not fix: wrong credentials (``WRONGPASS``, ``NOAUTH``), an ACL
that does not grant a command or key (``NOPERM``), a TLS certificate that does
not verify, a protocol the client cannot speak. Those raise at once, naming the
cause; nothing is journaled for them. A full connection pool (``max_connections``
connections in use, redis-py's ``MaxConnectionsError``) asked no server: it is a plain
:class:`~agentmem.errors.BackendError` saying so, not an outage.
"""

from __future__ import annotations

import ssl

import redis
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    InvalidResponse,
    NoPermissionError,
    RedisClusterException,
)

from agentmem.errors import BackendError, Refused, Unavailable

__all__ = ["CLUSTER_LINK_ERRORS", "LINK_ERRORS", "PERMANENT_MARKERS", "connection_failure",
           "is_permanent", "pool_exhausted"]

LINK_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError,
                                            InvalidResponse)
"""What redis-py raises when the link to the server fails, or when what answers does not
speak its protocol (``InvalidResponse``: :func:`connection_failure` makes that one
:class:`~agentmem.errors.Refused`, never retried)."""
CLUSTER_LINK_ERRORS: tuple[type[Exception], ...] = (RedisClusterException, *LINK_ERRORS)
"""The same of a cluster client, which also raises its own errors of the cluster."""

PERMANENT_MARKERS = ("WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "invalid username",
                     "certificate verify failed", "CERTIFICATE_VERIFY_FAILED",
                     "wrong version number", "Protocol error", "unknown protocol")
"""Texts of a connection error that waiting does not fix (redis-py wraps some of them
in a plain ``ConnectionError``)."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` (from redis-py) is a refusal that retrying does not fix."""
    for e in _chain(exc):
        if isinstance(e, AuthenticationError | AuthorizationError | NoPermissionError
                      | InvalidResponse | ssl.SSLCertVerificationError):
            return True
        if isinstance(e, ssl.SSLError) and not isinstance(
                e, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return True  # a handshake that failed, not a connection that dropped
        text = str(e)
        if any(marker in text for marker in PERMANENT_MARKERS):
            return True
    return False


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's connection pool refusing one more connection
    (``max_connections`` in use): no server was asked."""
    exhausted = getattr(redis.exceptions, "MaxConnectionsError", None)
    return (exhausted is not None and isinstance(exc, exhausted)) or (
        isinstance(exc, redis.ConnectionError) and str(exc) == "Too many connections")


def connection_failure(what: str, exc: BaseException) -> BackendError:
    """The agentmem error for a failed connection or call: :class:`Refused` when the
    cause is permanent, else :class:`Unavailable`; ``what`` names the server. A full
    connection pool is neither: a :class:`BackendError` that says so (no server was
    asked: the client made more calls at once than its pool has connections, which
    is no outage to journal and wait out)."""
    if pool_exhausted(exc):
        return BackendError(
            f"{what}: the client's connection pool is exhausted ({exc}): more calls at "
            "once than its max_connections; raise max_connections, or pass a client "
            "whose pool waits for a free connection (redis-py's BlockingConnectionPool)")
    if is_permanent(exc):
        return Refused(f"{what} refused this client ({type(exc).__name__}): {exc}; "
                       "check the credentials, the ACL, the TLS settings or the URL")
    if isinstance(exc, redis.RedisError | OSError):
        return Unavailable(f"{what} is unreachable: {exc}")
    return Unavailable(f"{what} is unreachable: {exc!r}")
