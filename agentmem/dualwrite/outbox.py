"""The outbox: what Redis acknowledged, handed to the archive durably.

A dual writer writes each action through a repository with an outbox
(:meth:`~agentmem.repository.base.RecordOps.with_outbox`): the write script that
stores the action and its indices also appends the action's hash key to the
writer's own list ``agentmem:outbox:<name>``, names that list in the set
``agentmem:outboxes`` and renews the writer's lease ``agentmem:outbox:<name>:lease``,
all in one atomic step. So an action Redis acknowledged is either archived or
listed in an outbox, whatever happens to the process that wrote it.

The writer archives its buffer and drops from the head of its outbox exactly the
keys it read before the archive committed (``outbox_ack.lua``). Any other process
on the same stores drains the outbox of a writer whose lease has expired
(:func:`drain`): it renames the list to ``...:claimed`` (``outbox_claim.lua``),
reads the listed hashes, archives them and drops what it archived, one chunk at a
time, under the drain lock ``agentmem:outbox-drain``. The archive skips an action it
holds already, so archiving twice is harmless; dropping only what was read makes
a crash at any instant leave each key listed until it is archived.

On a Redis Cluster the outbox's keys carry one hash tag (:data:`CLUSTER_NAMES`:
``{agentmem:outbox}:<name>``, its registry, lease and drain lock), so every script
above runs in that one slot; the records are in their agents' slots, so the writer
lists their keys in a call of its own right after their write and before it reports
them stored (``outbox_append.lua``), and the hashes are read slot by slot.

A key whose hash is gone when it is drained (the action expired, or a tier
transition moved it first) cannot be archived: it is counted in
:attr:`DrainReport.missing` and logged. Drain within the action TTL.
See ``docs/durability.md``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmem.backends.archivedelete import write_updating
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.errors import AgentMemError, BackendError, DuplicateId
from agentmem.lua.dualwrite import OUTBOX_ACK, OUTBOX_CLAIM, OUTBOX_UNLOCK
from agentmem.lua.scripts import GET_MANY
from agentmem.model.records import Action
from agentmem.plans.keyspace import hash_tag
from agentmem.plans.plan import Plan, command, every_reply, script_call, single

__all__ = ["CLAIMED", "CLUSTER_NAMES", "DRAIN_LOCK", "LOCK_MS", "ONE_SERVER_NAMES", "PREFIX",
           "REGISTRY", "DrainReport", "Names", "Outbox", "drain", "names_for"]

REGISTRY = "agentmem:outboxes"
"""The set of every outbox list that may hold keys."""
PREFIX = "agentmem:outbox:"
"""An outbox list is ``PREFIX + <writer name>``; its lease ``... + ':lease'``."""
CLAIMED = ":claimed"
"""The suffix of an outbox a drainer took over."""
DRAIN_LOCK = "agentmem:outbox-drain"
"""One drainer at a time (``SET NX PX``; renewed per chunk)."""
LOCK_MS = 60_000
"""The drain lock's time to live: a drainer killed while holding it blocks every other
drain (``busy``) until it runs out."""


@dataclass(frozen=True)
class Names:
    """Where the outboxes of one Redis live: the registry set, the prefix of every outbox
    list (its lease: ``+ ':lease'``), the drain lock."""

    registry: str
    prefix: str
    drain_lock: str


ONE_SERVER_NAMES = Names(REGISTRY, PREFIX, DRAIN_LOCK)
CLUSTER_NAMES = Names("{agentmem:outbox}:registry", "{agentmem:outbox}:",
                      "{agentmem:outbox}:drain")
"""A Redis Cluster's: one hash tag, so that the outbox scripts run in one slot."""


def names_for(memory: Memory) -> Names:
    """The outbox names of ``memory``'s Redis (a cluster's, or one server's)."""
    return CLUSTER_NAMES if getattr(memory.runner, "cluster", False) else ONE_SERVER_NAMES


LOCK_POLL = 0.05
"""Seconds between tries while :func:`drain` waits for the lock."""
CHUNK = 1000

log = logging.getLogger("agentmem.dualwrite.outbox")


@dataclass
class DrainReport:
    """What :func:`drain` (or a writer's own archive write) did."""

    outboxes: int = 0
    """Outboxes drained (claimed from stopped writers, or left claimed by a drainer)."""
    read: int = 0
    """Keys read from outboxes."""
    archived: int = 0
    """Rows the archive inserted (the rest it held already)."""
    missing: list[str] = field(default_factory=list)
    """Keys whose hash was gone: not archivable (expired, or moved to a lower tier)."""
    busy: bool = False
    """Another drainer held the drain lock: nothing was done."""

    def as_dict(self) -> dict[str, Any]:
        return {"outboxes": self.outboxes, "read": self.read, "archived": self.archived,
                "missing": len(self.missing), "busy": self.busy}


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Outbox:
    """One writer's outbox on ``memory`` (one server or a cluster): its list, its lease,
    and the repository whose writes append to it."""

    def __init__(self, memory: Memory, *, lease: float = 30.0, name: str | None = None) -> None:
        self.memory = memory
        self.names = names_for(memory)
        self.name = name or secrets.token_hex(8)
        self.key = self.names.prefix + self.name
        self.lease_key = self.key + ":lease"
        self.lease_ms = max(1, int(lease * 1000))
        runner: Any = memory.runner  # one server: each write checks the marker's token
        marker = None if getattr(runner, "cluster", False) else runner.guard.marker
        self.actions = memory.actions.with_outbox(self.key, self.names.registry,
                                                  self.lease_key, self.lease_ms, marker)
        self._shape: dict[str, tuple[str, str]] = {}

    def key_of(self, action: Action) -> str:
        """The hash key ``action`` is stored under (as the outbox lists it)."""
        agent = action.agent_id
        shape = self._shape.get(agent)
        if shape is None:
            shape = self.memory.actions.layout.template("action").around(
                "action_id", {"agent_id": agent})
            self._shape[agent] = shape
        return shape[0] + str(action.action_id) + shape[1]

    def listed(self) -> list[str]:
        """The keys the outbox holds, oldest first."""
        return _lrange(self.memory, self.key, -1)

    def ack(self, keys: Sequence[str]) -> bool:
        """Drop ``keys`` (read from the head, now archived); False if the list was claimed
        meanwhile (its drainer archives them again, harmlessly)."""
        return _ack(self.memory, self.names, self.key, keys)

    def release(self) -> None:
        """End the lease (the writer closed): an outbox left non-empty is drained by the
        next :func:`drain` at once."""
        self.memory.runner.run(single(command("DEL", self.lease_key), lambda _: None))


def _lrange(memory: Memory, key: str, stop: int) -> list[str]:
    return [_text(k) for k in memory.runner.run(
        single(command("LRANGE", key, 0, stop), list))]


def _ack(memory: Memory, names: Names, key: str, keys: Sequence[str], lock: str = "") -> bool:
    """``outbox_ack.lua``: drop ``keys`` from the head of ``key``; with ``lock`` (a drain
    token) only while that drainer holds the drain lock, which is renewed."""
    if lock:
        call = script_call(OUTBOX_ACK, (lock, LOCK_MS, *keys),
                           (key, names.registry, names.drain_lock))
    else:
        call = script_call(OUTBOX_ACK, ("", "", *keys), (key, names.registry))
    return bool(memory.runner.run(single(call, int)))


def read_actions(memory: Memory, keys: Iterable[str]) -> tuple[list[Action], list[str]]:
    """The actions stored under ``keys`` (one round trip; on a cluster one call per hash
    tag, i.e. per agent), and the keys whose hash is gone."""
    keys = list(keys)
    if not keys:
        return [], []
    if getattr(memory.runner, "cluster", False):
        parts: dict[str, list[str]] = {}
        for k in keys:
            parts.setdefault(hash_tag(k), []).append(k)
        groups = list(parts.values())
        replies = memory.runner.run(Plan(
            tuple(script_call(GET_MANY, ["", "", *g], route=g[0]) for g in groups),
            every_reply))
        held = {k: h for g, r in zip(groups, replies, strict=True)
                for k, h in zip(g, r, strict=True)}
        raw = [held[k] for k in keys]
    else:
        raw = memory.runner.run(single(script_call(GET_MANY, ["", "", *keys]), list))
    decode = memory.actions.spec.codec.decode
    found, missing = [], []
    for k, h in zip(keys, raw, strict=True):
        if h:
            found.append(decode(h))
        else:
            missing.append(k)
    return found, missing


def drain(memory: Memory, archive: Archive, *, include_live: bool = False,
          skip: str | None = None, chunk: int = CHUNK, wait: float = 0.0,
          stop: Callable[[], bool] | None = None) -> DrainReport:
    """Archive what the outboxes of stopped writers list (their lease expired), and what
    a drainer that stopped left claimed; with ``include_live``, every writer's outbox
    (safe: a live writer's own acknowledgement then finds its list claimed and leaves
    it). ``skip``: an outbox not to touch (the caller's own). ``wait``: seconds to wait
    for the drain lock while another drainer holds it (one that was killed holds it
    until its time to live, :data:`LOCK_MS`, runs out). ``stop``: asked between chunks;
    when it says so, the drain ends there and what is left stays listed (claimed) for
    the next drain. Returns what was done; ``busy`` when another drainer held the lock
    (after ``wait``): nothing was done."""
    report = DrainReport()
    names = names_for(memory)
    token = secrets.token_hex(8)
    if not _lock(memory, names, token, wait):
        report.busy = True
        return report
    try:
        members = sorted(_text(m) for m in memory.runner.run(
            single(command("SMEMBERS", names.registry), list)))
        for key in members:
            if key == skip:
                continue
            if stop is not None and stop():
                break
            if key.endswith(CLAIMED):
                _drain_list(memory, names, archive, key, token, chunk, report, stop)
                continue
            claimed = key + CLAIMED
            claim = script_call(OUTBOX_CLAIM, ("1" if include_live else "0",),
                                (key, claimed, names.registry, key + ":lease"))
            state = memory.runner.run(single(claim, int))
            if state == -1:  # a claimed list left by a drainer that stopped: first that
                if not _drain_list(memory, names, archive, claimed, token, chunk, report,
                                   stop):
                    break
                state = memory.runner.run(single(claim, int))
            if state == 1:
                _drain_list(memory, names, archive, claimed, token, chunk, report, stop)
    finally:
        _unlock(memory, names, token)
    if report.missing:
        log.warning("%d actions listed in outboxes were gone from Redis before they were "
                    "archived (expired, or moved to intermediate memory): %s",
                    len(report.missing), report.missing[:5])
    return report


def _lock(memory: Memory, names: Names, token: str, wait: float) -> bool:
    """Take the drain lock, waiting up to ``wait`` seconds while another drainer holds it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            got = memory.runner.run(single(
                command("SET", names.drain_lock, token, "NX", "PX", LOCK_MS),
                lambda r: r is not None))
        except AgentMemError:  # an error reply, or Redis unreachable: nothing to release
            raise
        except BaseException:  # the reply was lost (KeyboardInterrupt): the SET may have
            with contextlib.suppress(Exception):  # run, and the lock be ours for 60 s
                _unlock(memory, names, token)
            raise
        left = deadline - time.monotonic()
        if got or left <= 0:
            return bool(got)
        time.sleep(min(LOCK_POLL, left))


def _unlock(memory: Memory, names: Names, token: str) -> None:
    """Release the drain lock if ``token`` holds it (``outbox_unlock.lua``)."""
    memory.runner.run(single(script_call(OUTBOX_UNLOCK, (token,), (names.drain_lock,)),
                             lambda _: None))


def _drain_list(memory: Memory, names: Names, archive: Archive, key: str, token: str,
                chunk: int, report: DrainReport, stop: Callable[[], bool] | None) -> bool:
    """Drain the claimed list ``key``; False if ``stop`` ended it before it was empty."""
    report.outboxes += 1
    while True:
        keys = _lrange(memory, key, chunk - 1)
        if not keys:
            _ack(memory, names, key, (), token)  # the registry forgets the emptied list
            return True
        if stop is not None and stop():
            return False
        actions, missing = read_actions(memory, keys)
        report.read += len(keys)
        # (an archived row of the same action is kept: see write_updating)
        inserted, refused = write_updating(archive, actions, replace=False) if actions \
            else (0, [])
        report.archived += inserted
        if refused:  # left listed: drained again once resolved
            raise DuplicateId(
                f"{len(refused)} of {len(actions)} actions of {key} not archived: the "
                f"archive holds other actions under their ids "
                f"({[str(actions[n].action_id) for n in refused[:5]]})",
                stored=[str(a.action_id) for n, a in enumerate(actions) if n not in refused],
                failed=dict.fromkeys(refused, "EXISTS: the archive holds another action"))
        report.missing += missing
        if not _ack(memory, names, key, keys, token):
            raise BackendError(f"the drain lock {names.drain_lock} was lost while draining {key}; "
                               "what was archived stays listed for the next drain")


def listed_ids(memory: Memory, skip: str = "") -> set[tuple[str, str]]:
    """(agent id, action id) of every action record the outboxes list (the lists the
    registry names, claimed ones included) but ``skip`` (the caller's own), in two round
    trips: actions Redis acknowledged to another writer, perhaps a stopped one, that are
    not archived yet."""
    names = names_for(memory)
    members = sorted(k for m in memory.runner.run(
        single(command("SMEMBERS", names.registry), list)) if (k := _text(m)) != skip)
    if not members:
        return set()
    lay = memory.actions.layout
    out: set[tuple[str, str]] = set()
    for keys in memory.runner.run(Plan([command("LRANGE", k, 0, -1) for k in members],
                                       every_reply)):
        for raw in keys:
            found = lay.parse(_text(raw))
            if found is not None and found[0] == "action":
                out.add((found[1]["agent_id"], found[1]["action_id"]))
    return out
