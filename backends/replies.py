"""How the runners read replies: redis-py's errors as agentmem's, scripts the server
lost, the layout check's errors, a client whose replies are decoded. Shared by the
blocking and asyncio runners (:mod:`agentmem.backends.redis`).

May import: ``redis``, ``agentmem.errors``, ``agentmem.plans``,
``agentmem.backends.failures``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import NoScriptError

from agentmem.backends.failures import LINK_ERRORS, connection_failure, is_permanent
from agentmem.errors import BackendError, ConfigError, Refused
from agentmem.plans.plan import Call

__all__ = ["check_client", "command_name", "layout_errors", "mapped", "missing_scripts",
           "ping_refused", "script_error", "unavailable"]


def unavailable(exc: Exception) -> BackendError:
    return connection_failure("Redis", exc)


def missing_scripts(replies: Sequence[Any]) -> list[int]:
    return [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]


def mapped(replies: list[Any]) -> list[Any]:
    """Replies with redis-py errors turned into agentmem errors (not raised)."""
    out = []
    for r in replies:
        if isinstance(r, LINK_ERRORS):
            raise unavailable(r)
        if isinstance(r, Exception):
            err = (Refused(f"Redis refused a command ({type(r).__name__}): {r}")
                   if is_permanent(r) else BackendError(f"Redis refused a command: {r}"))
            err.__cause__ = r
            r = err
        out.append(r)
    return out


def script_error(exc: redis.RedisError) -> BackendError:
    """A refused script load: ``Refused`` when retrying cannot help (an ACL without
    ``SCRIPT LOAD``), as for any command."""
    if is_permanent(exc):
        return Refused(f"Redis refused to load a script ({type(exc).__name__}): {exc}")
    return BackendError(f"Redis refused to load a script: {exc}")


@contextmanager
def layout_errors() -> Iterator[None]:
    """The layout check's redis-py errors as agentmem errors (blocking and asyncio)."""
    try:
        yield
    except LINK_ERRORS as exc:
        raise unavailable(exc) from exc
    except redis.ResponseError as exc:
        if is_permanent(exc):
            raise Refused(f"Redis refused the layout check ({type(exc).__name__}): "
                          f"{exc}") from exc
        raise BackendError(f"Redis refused the layout check: {exc}") from exc


def command_name(call: Call) -> str:
    name = call.args[0]
    return name.decode() if isinstance(name, bytes) else str(name)


def check_client(client: Any) -> None:
    """A client whose replies agentmem can read: bytes, not decoded text."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        raise ConfigError(
            "the client decodes responses; agentmem needs bytes (embeddings are raw "
            "bytes). Create it with decode_responses=False"
        )


def ping_refused(exc: redis.ResponseError, what: str = "PING"
                 ) -> BackendError | ConfigError:
    """An error reply to ``PING`` (``what``) or to the handshake before it: a database
    the URL names that the server does not have is a :class:`ConfigError` (a bad URL;
    also a server that came back with fewer databases)."""
    if is_permanent(exc):
        return Refused(f"Redis refused this client ({type(exc).__name__}): {exc}")
    if "DB index" in str(exc) or "invalid DB" in str(exc).lower():
        return ConfigError(f"the Redis URL names a database the server does not have: "
                           f"{exc}")
    return BackendError(f"Redis answered {what} with an error: {exc}")
