"""The bytes a runner writes: calls packed as RESP commands, small ones written together.

Used by the blocking, asyncio and cluster runners (:mod:`agentmem.backends.redis`,
:mod:`agentmem.backends.cluster`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from agentmem.lua.scripts import ALL, Script
from agentmem.plans.plan import Call, command

hiredis: Any
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency, but optional in redis-py
    hiredis = None

__all__ = ["SEND_CHUNK", "KnownScripts", "inline_loads", "own_replies", "pack_args",
           "packed_chunks", "to_load"]


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


class KnownScripts:
    """The SHAs of the scripts a runner's server is thought to have (:func:`inline_loads`
    loads the others ahead of their first call), forgotten whenever one of the runner's
    connections connects, again or for the first time: a server that restarted, or a
    replica that took over, has lost them (or never had them), and every connection to
    it is a new one. So after a restart or a failover each script goes, on the pipeline
    of its next first call, after its load, and no call of a plan of several calls is
    refused with ``NOSCRIPT`` while another writer loads the script again and then
    runs after its successors. ``SCRIPT FLUSH`` on a live server makes no connection:
    the calls it refuses are sent again after the others (``docs/architecture.md``)."""

    def __init__(self) -> None:
        self.shas: set[str] = set()
        self.generation = 0
        """Incremented at every forgetting: what a plan sent before it learnt nothing."""
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, conn: Any) -> None:
        """A connection taken from the pool: forget the scripts when it connects (now,
        if it was connected before it was watched: it may be to another server)."""
        if conn not in self._watched:
            self._watched.add(conn)
            conn.register_connect_callback(self._connected)
            self._connected(conn)

    def _connected(self, conn: Any) -> None:  # redis-py's connect callback
        with self._lock:
            self.generation += 1
            self.shas.clear()

    def record(self, generation: int, shas: set[str]) -> None:
        """The SHAs of the loads a plan sent at ``generation`` ran (:func:`own_replies`),
        kept unless a connection connected since (they may have run on a server that is
        gone)."""
        with self._lock:
            if generation == self.generation:
                self.shas.update(shas)


def inline_loads(calls: Iterable[Call], loaded: set[str], injected: dict[int, str],
                 bulk: bool = False) -> Iterator[Call]:
    """``calls``, the first call of a script not in ``loaded`` (the runner's SHAs, shared
    by its threads) preceded by ``SCRIPT LOAD`` of it and of every core script not in
    ``loaded`` (``lua.scripts.ALL``: once per runner), on the same connection: the
    server runs them first, so that no call of the pipeline is refused with
    ``NOSCRIPT`` and run after its successors while another thread or task loads the
    script meanwhile (those calls, sent again after the others, wrote their list
    entries behind their successors'). ``injected`` gets each load's call id and SHA;
    :func:`own_replies` takes their replies out and puts the SHAs in ``loaded`` once the
    server has run the loads (until then, other threads load them too). A refused load
    (an ACL without ``SCRIPT LOAD``, the scripts loaded by an administrator) counts as
    run: it is not sent again with every plan, and shows up, if it matters, as the
    script's ``NOSCRIPT``, whose reload raises. A server that lost its scripts
    after the runner loaded them (a restart, a failover to a replica, ``SCRIPT
    FLUSH``) refuses their calls as before: they are loaded then and sent again; a
    ``bulk`` plan (a large write: many calls of one script) loads each of its scripts
    ahead of its first call whatever ``loaded`` says, so that even then none of its
    calls runs late while another thread loads the script again."""
    mine: set[str] = set()
    for call in calls:
        script = call.script
        if script is not None and script.sha not in mine and (
                bulk or script.sha not in loaded):
            todo = [script] if script.sha in loaded else to_load(script, loaded | mine)
            for s in todo:
                load = command("SCRIPT", "LOAD", s.source)
                injected[id(load)] = s.sha
                mine.add(s.sha)
                yield load
        yield call


def own_replies(sent: list[Call], replies: list[Any], injected: dict[int, str],
                loaded: set[str]) -> tuple[list[Call], list[Any]]:
    """``sent`` and ``replies`` (all read: the server ran every call) without the loads
    :func:`inline_loads` put in, whose SHAs go in ``loaded``."""
    if not injected:
        return sent, replies
    loaded.update(injected.values())
    keep = [i for i, call in enumerate(sent) if id(call) not in injected]
    return [sent[i] for i in keep], [replies[i] for i in keep]


def to_load(script: Script, loaded: set[str]) -> list[Script]:
    """``script`` and the core scripts not in ``loaded``, once each."""
    return list({s.sha: s for s in (script, *ALL) if s.sha not in loaded}.values())
