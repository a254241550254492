"""Noticing a Redis that restarted empty between two calls (``docs/durability.md``).

A Redis without persistence that restarts loses every key, the retired marks of a
dual writer's ids among them (``agentmem.dualwrite.ids``). When that happens between
two calls, redis-py's pool connects again without an error, so the writer would never
find Redis unreachable, and would go on writing with ids Redis no longer knows it gave.

A :class:`RestartGuard` belongs to a runner. Once a dual writer has seeded the marks it
arms the guard with the marker key ``agentmem:ids`` (one per master on a cluster) and the
token the seeding left there, and (one server) the server's ``run_id``. From then on
every connection the runner uses checks them when it connects (a connect callback of
redis-py's, registered on each connection the first time the runner takes it; a ``GET``
and an ``INFO server`` per new connection): a missing marker or another token means the
server lost its data (or another writer seeded it again since); another ``run_id``, that
the server restarted, maybe from an older snapshot that holds the marker but not the
marks raised since. Either way the guard is *tripped*. While tripped, the runner refuses,
before anything is sent on the connection, every plan of the writer's own writes
(``Plan.guarded``: :class:`~agentmem.errors.RedisLostData`): the writer handles it as an
outage (the journal), seeds the marks again and re-arms the guard. Reads and every other
write (``load_from_sql``'s, a plain ``add``) go on.

A write never reconnects half way: the runner sends a plan on one connection, and a
connection that breaks while a plan is on it raises (an outage, as before).

A flush or an eviction of the marker makes no reconnection: for those, each write call
of the dual writer carries the marker key and the armed token (:meth:`marker`), and the
write script refuses the whole call when they differ
(:class:`~agentmem.errors.RedisLostData`; the runner then trips the guard).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import redis

from agentmem.errors import RedisLostData

__all__ = ["RestartGuard", "server_run_id"]

Marker = tuple[str, bytes]
"""(marker key, the token it held when the guard was armed)."""


class RestartGuard:
    """Trips when a connection finds a marker missing or changed, or the server restarted;
    see the module."""

    def __init__(self, *, cluster: bool = False) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._markers: dict[str | None, Marker] = {}  # server name (None: the one server)
        self._run_id: bytes | None = None  # one server: its run_id when armed
        self.tripped = False
        """A server lost its data (or was seeded again) since the guard was armed."""
        self.trips = 0
        """How many times the guard tripped: a writer that saw fewer re-seeds too."""

    @property
    def armed(self) -> bool:
        return bool(self._markers)

    def arm(self, markers: dict[str | None, tuple[str, bytes | None]],
            run_id: bytes | None = None) -> bool:
        """Watch ``markers`` (server name to marker key and its token; ``None`` as the
        token: the marker is missing) and, given, the one server's ``run_id``. Returns
        False, and leaves the guard tripped, when a marker is missing already."""
        with self._lock:
            if any(token is None for _, token in markers.values()):
                self._trip_locked()
                return False
            self._markers = {name: (key, token) for name, (key, token) in markers.items()
                             if token is not None}
            self._run_id = run_id
            self.tripped = False
            return True

    def admit(self, conn: Any, guarded: bool, server: str | None = None) -> None:
        """Called with each connection a runner took from its pool, connected, before it
        sends anything: watch it (checking it now, once, since it connected before it was
        watched), and refuse a ``guarded`` plan (a dual writer's write) while tripped."""
        if conn not in self._watched:
            self._watched.add(conn)
            conn.register_connect_callback(self._connected)
            if self._markers:
                self._check(conn, server)
        if guarded and self.tripped:
            raise RedisLostData(
                "Redis lost its data since this writer's retired marks were seeded (it "
                "restarted without persistence, or from an older snapshot): the write was "
                "not sent; the writer seeds the marks again before its next write")

    def marker(self) -> tuple[str, str] | None:
        """One server: the marker key and the token the guard was armed with, which the
        dual writer's write calls check in their script (``writeargs.outbox_group``:
        a flush or an eviction of the marker makes no reconnection); None unarmed."""
        got = self._markers.get(None)
        return None if got is None else (got[0], got[1].decode())

    def trip(self) -> None:
        """A write script found the marker missing or changed (``RedisLostData``)."""
        with self._lock:
            self._trip_locked()

    def _connected(self, conn: Any) -> None:
        """redis-py's connect callback: the connection has just connected (again)."""
        if self._markers and not self.tripped:
            self._check(conn, f"{conn.host}:{conn.port}" if self.cluster else None)

    def _check(self, conn: Any, server: str | None) -> None:
        marker = self._markers.get(server)
        if marker is None:  # a server the guard was not armed for (a new master)
            self.trip()
            return
        key, token = marker
        run_id = self._run_id
        conn.send_command("GET", key, check_health=False)
        if run_id is not None:
            conn.send_command("INFO", "server", check_health=False)
        got, info = _reply(conn), _reply(conn) if run_id is not None else None
        # a refused GET (an ACL, a moved slot, LOADING) is not the token either
        if got != token or (run_id is not None and server_run_id(info) != run_id):
            self.trip()

    def _trip_locked(self) -> None:
        if not self.tripped:
            self.tripped = True
            self.trips += 1


def _reply(conn: Any) -> Any:
    """The next reply on ``conn``; an error reply returned, not raised (both replies of
    the check are read before it decides, so none is left on the socket)."""
    try:
        return conn.read_response()
    except redis.ResponseError as exc:
        return exc


def server_run_id(info: Any) -> bytes | None:
    """The ``run_id`` in an ``INFO server`` reply (raw, or parsed into a dict), or None."""
    if isinstance(info, dict):
        got = info.get("run_id", info.get(b"run_id"))
        return None if got is None else (got if isinstance(got, bytes) else str(got).encode())
    raw = info if isinstance(info, bytes) else str(info or "").encode()
    for line in raw.splitlines():
        if line.startswith(b"run_id:"):
            return line[7:].strip()
    return None
