"""Waiting for a reply: poll the socket for a short, bounded time before sleeping.

A blocking read puts the thread to sleep until the reply arrives, and waking it
again is slow on a virtual machine: the idle CPU halts and is woken by an
interrupt. Measured on the 2-core VMs of ``docs/performance.md``, a loopback
``PING`` took about 60 µs with a blocking read and about 23 µs when the client
polled the socket instead; an ``add()`` took about 30% less. A client that polls
for a bounded time first gets a reply that comes quickly without the wake-up, and
sleeps as before when the reply is slower.

Polling costs CPU time while it lasts, so it is worth it only when the server runs
on the same machine with a core of its own. ``spin_us=None`` (the default of
:func:`agentmem.connect`) turns it on for exactly that case: a loopback address or
a Unix socket, and at least two CPUs this process may run on. ``0`` turns it off;
a number sets the longest poll in microseconds. Only the blocking runners poll;
an asyncio client already waits in its event loop.
"""

from __future__ import annotations

import ipaddress
import os
import select
import ssl
import time
from typing import Any

from agentmem.config import MAX_SPIN_US, RedisSettings, read

AUTO_SPIN_US = 200
"""The longest poll, in microseconds, when it is on by default (a local server): longer
than the replies of single writes and reads take there (30-130 µs measured), far
shorter than the time slice a sleeping thread gives up."""

__all__ = ["AUTO_SPIN_US", "MAX_SPIN_US", "client_spin", "is_local", "resolve_spin",
           "wait_readable"]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def is_local(host: str | None) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_spin(spin_us: object, *, host: str | None, unix: bool) -> float:
    """The longest poll in seconds for a server at ``host`` (or a Unix socket when
    ``unix``): ``spin_us`` itself when given, else on for a local server on a machine
    with at least two CPUs (:data:`AUTO_SPIN_US`), else 0."""
    if spin_us is None:
        if (unix or is_local(host)) and _usable_cpus() >= 2 and hasattr(select, "poll"):
            return AUTO_SPIN_US / 1e6
        return 0.0
    checked = read(RedisSettings, {"spin_us": spin_us}, env={}).spin_us
    assert checked is not None
    return checked / 1e6


def client_spin(spin_us: object, connection_kwargs: dict[str, Any]) -> float:
    """:func:`resolve_spin` for a redis-py pool's ``connection_kwargs``."""
    return resolve_spin(spin_us, host=connection_kwargs.get("host"),
                        unix="path" in connection_kwargs)


def wait_readable(conn: Any, budget: float) -> None:
    """Poll ``conn``'s socket until a reply can be read or ``budget`` seconds pass.

    Called after a round trip's calls are sent and before its first reply is read,
    when nothing of an earlier reply can be buffered. Does nothing for a connection
    without a plain socket (TLS may hold decrypted bytes the socket does not show).
    """
    sock = getattr(conn, "_sock", None)
    if sock is None or isinstance(sock, ssl.SSLSocket) or not hasattr(select, "poll"):
        return  # (no select.poll: Windows)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    poll = poller.poll
    clock = time.perf_counter
    deadline = clock() + budget
    while not poll(0):
        if clock() >= deadline:
            return
