"""The dual writer's defaults and what travels through its background queue."""

from __future__ import annotations

import threading

from agentmem.errors import AgentMemError, BackendError
from agentmem.model.records import Action

__all__ = ["DEFAULT_BUFFER_SIZE", "DEFAULT_INTERVAL", "DEFAULT_QUEUE_SIZE"]

DEFAULT_BUFFER_SIZE = 1000
DEFAULT_INTERVAL = 30.0
DEFAULT_QUEUE_SIZE = 10_000
# how long the background thread sleeps at most between checks of the interval
_POLL = 0.5


class _Flush:
    """A flush request travelling through the queue behind the actions it covers."""

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    """Tells the background thread to end (after everything before it)."""


_Item = Action | _Flush | _Stop


def _as_agentmem_error(exc: BaseException, what: str) -> AgentMemError:
    if isinstance(exc, AgentMemError):
        return exc
    err = BackendError(f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
