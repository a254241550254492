"""The bytes a runner writes: calls packed as RESP commands, small ones written together.

Used by the blocking, asyncio and cluster runners (:mod:`agentmem.backends.redis`,
:mod:`agentmem.backends.cluster`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from agentmem.lua.scripts import ALL, Script
from agentmem.plans.plan import Call

hiredis: Any
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency, but optional in redis-py
    hiredis = None

__all__ = ["SEND_CHUNK", "loaded_first", "pack_args", "packed_chunks", "to_load"]


def pack_args(conn: Any, args: Sequence[Any]) -> list[bytes]:
    """The RESP bytes of a command; hiredis directly, skipping redis-py's per-argument
    pass (also used by the cluster runner)."""
    if hiredis is not None:
        try:
            return [hiredis.pack_command(tuple(args))]
        except TypeError:
            pass  # an argument type hiredis does not take: let redis-py convert it
    return list(conn.pack_command(*args))


SEND_CHUNK = 1 << 13
"""Bytes of small calls written to the socket together: a plan of many small calls (a
batch's reads, ~150 bytes each) costs a few writes, not one per call; a call of a write's
batch of records (tens of kB) is written as soon as it is built, as before, so that the
server runs it while the next is built."""


def packed_chunks(conn: Any, calls: Iterable[Call], sent: list[Call]) -> Iterator[bytes]:
    """The RESP bytes of ``calls`` in pieces of about :data:`SEND_CHUNK` (each call
    appended to ``sent`` as it is packed); built lazily, so that the server runs the
    first pieces while the next are built."""
    pending: list[Any] = []
    size = 0
    for call in calls:
        packed = pack_args(conn, call.args)
        sent.append(call)
        pending += packed
        size += sum(map(len, packed))
        if size >= SEND_CHUNK:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending, size = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else b"".join(pending)


def loaded_first(calls: Iterable[Call], loaded: set[str],
                 load: Callable[[list[Script]], None]) -> Iterator[Call]:
    """``calls``, scripts loaded before the first call of one goes out unless ``loaded``
    (the runner's SHAs, shared by its threads) has it: ``load(scripts)`` (one pipeline,
    on a connection of its own) loads that script and every core script the runner has
    not loaded (``lua.scripts.ALL``), so that a runner pays one round trip for them.
    A pipeline of one write's calls then runs in order. (Sent as they came, the calls
    before another thread loaded the script were refused with ``NOSCRIPT`` and those
    after it ran: the refused ones, sent again after, wrote their list entries behind
    their successors'.) A server that lost its scripts since (a restart) refuses the
    calls as before, and they are sent again in order."""
    for call in calls:
        script = call.script
        if script is not None and script.sha not in loaded:
            todo = to_load(script, loaded)
            load(todo)
            loaded.update(s.sha for s in todo)
        yield call


def to_load(script: Script, loaded: set[str]) -> list[Script]:
    """``script`` and the core scripts not in ``loaded``, once each."""
    return list({s.sha: s for s in (script, *ALL) if s.sha not in loaded}.values())
