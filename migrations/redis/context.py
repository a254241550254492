"""The state and the walk of a key-layout migration (``agentmem.migrations.redis``):
the keys that record it (one server's, or a cluster's in one slot), :class:`Revision`,
and :class:`Context`, which a revision's ``upgrade``/``downgrade`` gets: resumable
``SCAN`` batches over one server or every master of a cluster, and plans run on it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from agentmem.backends.cluster import ClusterRunner
from agentmem.backends.masters import master_size, scan_master
from agentmem.backends.redis import RedisRunner
from agentmem.lua.migrations import MIGRATION_STATE
from agentmem.plans.keyspace import LAYOUT_KEY
from agentmem.plans.plan import Arg, Call, Plan, command, script_call, single

T = TypeVar("T")

REVISION_KEY = LAYOUT_KEY + ":revision"
"""The last revision applied (absent: the base revision of the recorded layout)."""
PROGRESS_KEY = LAYOUT_KEY + ":progress"
"""A hash, present while a revision runs: where a killed runner resumes."""
DEFAULT_BATCH = 1000
"""Keys per SCAN batch (``COUNT``)."""
PAUSE_ENV = "AGENTMEM_MIGRATE_PAUSE"
"""Seconds to sleep after each batch (for tests that kill a runner half-way)."""
OUTBOX_REGISTRY = "agentmem:outboxes"
"""The dual writers' outboxes (``agentmem.dualwrite.outbox.REGISTRY``): lists of action
hash keys not archived yet, under their names of the current layout."""


OUTBOX_REGISTRY_CLUSTER = "{agentmem:outbox}:registry"
"""The same on a Redis Cluster (``agentmem.dualwrite.outbox.CLUSTER_NAMES.registry``)."""

Runner = RedisRunner | ClusterRunner


@dataclass(frozen=True)
class StateKeys:
    """The keys of the migration state and the outbox registry it checks: one server's,
    or a cluster's (the state in the one slot of :data:`LAYOUT_KEY`)."""

    layout: str
    revision: str
    progress: str
    outboxes: str


ONE_SERVER_STATE = StateKeys(LAYOUT_KEY, REVISION_KEY, PROGRESS_KEY, OUTBOX_REGISTRY)
CLUSTER_STATE = StateKeys(LAYOUT_KEY, "{" + LAYOUT_KEY + "}:revision",
                          "{" + LAYOUT_KEY + "}:progress", OUTBOX_REGISTRY_CLUSTER)


def state_keys(runner: Runner) -> StateKeys:
    return CLUSTER_STATE if isinstance(runner, ClusterRunner) else ONE_SERVER_STATE


@dataclass(frozen=True)
class Revision:
    """One revision of the key layout, as :func:`history` lists it."""

    revision: str
    down_revision: str | None
    description: str
    layout: int
    """The layout version of the data once this revision is applied."""
    module: ModuleType = field(repr=False, compare=False)
    opt_in: bool = False
    """Applied only when named as the target (or a later one is): ``head`` stops before
    it (revisions ``0004``, the compact layout 3, and ``0005``, layout 4's sorted type and
    target indices)."""


class Context:
    """What a revision's ``upgrade``/``downgrade`` gets: a runner and resumable scans.

    A revision sends its commands as plans (:meth:`run`, :meth:`replies`), like every
    other part of agentmem: one round trip per batch, redis-py's errors as agentmem's.
    ``scan(phase)`` yields batches of keys; the cursor and the counters are saved
    after each batch the revision has handled, so a killed runner resumes at the
    first unfinished batch (phases already done are skipped). ``count`` adds to a
    named counter; ``counters`` holds them all, saved ones included.
    """

    def __init__(self, runner: Runner, revision: Revision, direction: str, *,
                 batch: int, dry_run: bool, data_layout: int,
                 resume: dict[str, str] | None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        self.runner = runner
        self.progress = progress
        self.revision = revision
        self.direction = direction
        self.batch = batch
        self.dry_run = dry_run
        self.data_layout = data_layout
        """The layout of the data when the revision starts (dry run: as it is now)."""
        self.counters: dict[str, int] = {}
        self.batches = 0
        self._resume_phase: str | None = None
        self._resume_cursor = "0"
        self._pause = float(os.environ.get(PAUSE_ENV) or 0)
        if resume:
            self._resume_phase = resume.get("phase") or None
            self._resume_cursor = resume.get("cursor", "0")
            self.batches = int(resume.get("batches", "0"))
            self.counters = {k[2:]: int(v) for k, v in resume.items() if k.startswith("n:")}

    def run(self, plan: Plan[T]) -> T:
        """Run ``plan`` (its calls in one round trip) and return what it parses."""
        return self.runner.run(plan)

    def replies(self, calls: Iterable[Call]) -> list[Any]:
        """The replies of ``calls``, sent in one round trip; a command the server
        refused is a :class:`~agentmem.errors.BackendError` in its place (not raised)."""
        return self.run(Plan(tuple(calls), list))

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counters[name] = self.counters.get(name, 0) + n

    def reset(self, prefix: str) -> None:
        """Drop the counters whose names start with ``prefix``."""
        for name in [k for k in self.counters if k.startswith(prefix)]:
            del self.counters[name]

    def scan(self, phase: str, match: str | None = None) -> Iterator[list[str]]:
        """Batches of key names (``SCAN cursor [MATCH match] COUNT batch``), resumable."""
        cursor = "0"
        if self._resume_phase is not None:
            if phase != self._resume_phase:
                return  # an earlier phase, finished before the runner stopped
            self._resume_phase = None
            if self._resume_cursor == "done":
                return
            cursor = self._resume_cursor
        size = self._size() if self.progress is not None else 0
        scanned = 0
        for raw, after in self._pages(cursor, match):
            keys = []
            for k in raw:
                try:
                    keys.append(k.decode() if isinstance(k, bytes) else str(k))
                except UnicodeDecodeError:
                    continue  # not a key of any layout (ids are text)
            yield keys
            scanned += len(raw)
            if self.progress is not None:
                self.progress(f"{self.revision.revision} {phase}", scanned, size)
            self.batches += 1
            self._save(phase, "done" if after == "0" else after)
            if self._pause:
                time.sleep(self._pause)

    def _size(self) -> int:
        if isinstance(self.runner, ClusterRunner):
            return sum(master_size(self.runner, n) for n in self._masters())
        return self.run(single(command("DBSIZE"), int))

    def _pages(self, cursor: str, match: str | None) -> Iterator[tuple[list[Any], str]]:
        """``(keys of one SCAN batch, the cursor after it)``, from ``cursor``; the cursor
        is ``"0"`` after the last batch. On a cluster the masters are scanned in turn,
        the cursor being ``"<n>|<master>|<its cursor>"``."""
        if not isinstance(self.runner, ClusterRunner):
            match_args: tuple[str, ...] = ("MATCH", match) if match is not None else ()
            while True:
                nxt, raw = self.run(single(command("SCAN", cursor, *match_args, "COUNT",
                                                   self.batch), _scan_reply))
                cursor = str(int(nxt))
                yield raw, cursor
                if cursor == "0":
                    return
        masters = self._masters()
        names = [str(n.name) for n in masters]
        i, at = _master_cursor(cursor, names)
        while i < len(masters):
            at, raw = scan_master(self.runner, masters[i], at, match, self.batch)
            if at == 0:
                i += 1
            yield list(raw), "0" if i >= len(masters) else f"{i}|{names[i]}|{at}"

    def _masters(self) -> list[Any]:
        assert isinstance(self.runner, ClusterRunner)
        return sorted(self.runner.primaries(), key=lambda n: str(n.name))


    def restart(self, phase: str) -> None:
        """Make the next run (of this revision) start again at ``phase``, cursor 0."""
        self._save(phase, "0")

    def _save(self, phase: str, cursor: str) -> None:
        if self.dry_run:
            return
        fields: dict[str, Arg] = {
            "revision": self.revision.revision, "direction": self.direction, "phase": phase,
            "cursor": cursor, "batches": self.batches}
        fields.update({f"n:{k}": v for k, v in self.counters.items()})
        self.run(_set_state(state_keys(self.runner), progress=fields))


def _scan_reply(raw: Any) -> tuple[int, list[Any]]:
    """``SCAN``'s reply: redis-py's parsed ``(cursor, keys)``, or the raw pair."""
    cursor, keys = raw
    return int(cursor), list(keys)


def _master_cursor(text: str, names: list[str]) -> tuple[int, int]:
    """``(master's position, its SCAN cursor)`` of a saved cluster cursor; a master that is
    not the one saved (the cluster changed) is scanned again from its start."""
    if text == "0":
        return 0, 0
    pos, name, at = text.split("|")
    i = int(pos)
    return (i, int(at)) if i < len(names) and names[i] == name else (i, 0)


def _set_state(keys: StateKeys, layout: str = "", revision: str = "",
               progress: dict[str, Arg] | None = None) -> Plan[None]:
    """One atomic step of the migration's state: the layout value and the revision
    (``""``: left as they are) and the progress hash, replaced (``None``: deleted)."""
    argv: list[Arg] = [layout, revision]
    for name, value in (progress or {}).items():
        argv += [name, value]
    call = script_call(MIGRATION_STATE, argv, (keys.layout, keys.revision, keys.progress))
    return single(call, lambda _: None)
