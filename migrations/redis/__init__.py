"""Key-layout migrations of the Redis data (installed as ``agentmem.migrations.redis``).

Shaped like Alembic: one module per revision in ``versions/`` (``revision``,
``down_revision``, ``description``, ``layout``, ``upgrade(ctx)``, ``downgrade(ctx)``),
and a runner: :func:`upgrade`, :func:`downgrade`, :func:`current`, :func:`status`,
:func:`history`. See ``docs/layouts.md``.

The server's state is three keys outside every layout's families:

- ``agentmem:layout`` (:data:`~agentmem.plans.keyspace.LAYOUT_KEY`): the layout version of
  the data, ``"<from>><to>"`` while a revision that changes it runs (no store opens
  the data then);
- ``agentmem:layout:revision``: the last revision applied (absent: the revision of
  the recorded layout, ``0001`` for layout 1);
- ``agentmem:layout:progress``: a hash, present while a revision runs: the revision,
  the direction, the phase, the SCAN cursor after the last finished batch and the
  counters so far. A runner that was killed resumes from there.

Revisions walk the key space with ``SCAN`` in batches of ``batch`` (``COUNT``), so a
live server is never blocked, and each batch is idempotent: re-running the batch
after a crash finds its work done and skips it.

On a Redis Cluster (a ``redis+cluster://`` URL) the revision and progress keys are
``{agentmem:layout}:revision`` and ``{agentmem:layout}:progress``, in the slot of
``agentmem:layout`` (so that the state changes in one atomic step as above), the walk
scans every master in turn (the saved cursor names the master), and every command a
revision sends goes to its key's slot. Only revisions between layouts 2 and 3 run on
a cluster: layout 1's keys have no hash tags.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentmem.backends.admin import admin_runner
from agentmem.backends.cluster import ClusterRunner
from agentmem.errors import ConfigError, LayoutError
from agentmem.migrations.redis.context import (
    CLUSTER_STATE,
    DEFAULT_BATCH,
    ONE_SERVER_STATE,
    OUTBOX_REGISTRY,
    OUTBOX_REGISTRY_CLUSTER,
    PAUSE_ENV,
    PROGRESS_KEY,
    REVISION_KEY,
    Context,
    Revision,
    Runner,
    StateKeys,
    _set_state,
    state_keys,
)
from agentmem.plans.keyspace import LAYOUT_KEY, parse_layout_value
from agentmem.plans.keyspace import layout as layout_of
from agentmem.plans.plan import Plan, command, every_reply, single

__all__ = [
    "CLUSTER_STATE",
    "DEFAULT_BATCH",
    "ONE_SERVER_STATE",
    "OUTBOX_REGISTRY",
    "OUTBOX_REGISTRY_CLUSTER",
    "PAUSE_ENV",
    "PROGRESS_KEY",
    "REVISION_KEY",
    "Context",
    "MigrationError",
    "MigrationReport",
    "Revision",
    "Runner",
    "StateKeys",
    "Status",
    "current",
    "downgrade",
    "history",
    "state_keys",
    "status",
    "upgrade",
]

class MigrationError(LayoutError):
    """A migration cannot start, or its verification failed (nothing is hidden)."""


@dataclass(frozen=True)
class Status:
    """What :func:`status` reads from a server."""

    revision: str
    """The last revision applied."""
    layout: int | None
    """The recorded layout version (``None``: no key, layout 1 assumed; or in progress)."""
    in_progress: dict[str, str] | None
    """The progress hash of a revision that has not finished (``None``: none)."""


@dataclass
class MigrationReport:
    """What :func:`upgrade` or :func:`downgrade` did (or, with ``dry_run``, would do)."""

    direction: str
    start: str
    target: str
    dry_run: bool
    revisions: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per revision run: its counters (``before.<family>``, ``after.<family>``, ...)."""

    def as_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "from": self.start, "to": self.target,
                "dry_run": self.dry_run, "revisions": self.revisions, "counts": self.counts}

    def __str__(self) -> str:
        head = f"{self.direction} {self.start} -> {self.target}"
        if self.dry_run:
            head += " (dry run: nothing written)"
        lines = [head]
        if not self.revisions:
            lines.append("  nothing to do")
        by_id = {r.revision: r for r in history()}
        for rev in self.revisions:
            lines.append(f"  {rev}  {by_id[rev].description}")
            for name, n in sorted(self.counts.get(rev, {}).items()):
                lines.append(f"        {name}: {n}")
        return "\n".join(lines)


# -- the chain --------------------------------------------------------------------

def _load() -> list[Revision]:
    from agentmem.migrations.redis import versions

    found: dict[str | None, Revision] = {}
    for info in pkgutil.iter_modules(versions.__path__):
        module = importlib.import_module(f"{versions.__name__}.{info.name}")
        rev = Revision(module.revision, module.down_revision, module.description,
                       module.layout, module, bool(getattr(module, "opt_in", False)))
        if rev.down_revision in found:
            raise MigrationError(f"revisions {found[rev.down_revision].revision} and "
                                 f"{rev.revision} both follow {rev.down_revision}")
        found[rev.down_revision] = rev
    chain: list[Revision] = []
    parent: str | None = None
    while parent in found:
        chain.append(found.pop(parent))
        parent = chain[-1].revision
    if found:
        orphans = sorted(r.revision for r in found.values())
        raise MigrationError(f"revisions outside the chain: {orphans}")
    return chain


_CHAIN: list[Revision] | None = None


def history() -> list[Revision]:
    """Every revision, base first."""
    global _CHAIN
    if _CHAIN is None:
        _CHAIN = _load()
    return list(_CHAIN)


def _index(revision: str) -> int:
    chain = history()
    if revision in ("head", "heads"):  # the last revision before any opt-in one
        return next((i - 1 for i, rev in enumerate(chain) if rev.opt_in), len(chain) - 1)
    if revision == "base":
        return 0
    for i, rev in enumerate(chain):
        if rev.revision == revision:
            return i
    raise ConfigError(f"unknown revision {revision!r}; the revisions are "
                      f"{[r.revision for r in chain]} (or head, base)")


# -- the server's state -----------------------------------------------------------

def _text(raw: Any) -> str | None:
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


def _read(runner: Runner) -> Status:
    keys = state_keys(runner)
    plan = Plan((command("GET", keys.layout), command("GET", keys.revision),
                 command("HGETALL", keys.progress)), every_reply)
    raw_layout, raw_rev, raw_progress = runner.run(plan)
    progress = _progress(raw_progress)
    text = _text(raw_layout)
    layout: int | None = None
    if text is not None and ">" not in text:
        layout = parse_layout_value(text)
    elif text is not None and progress is None:
        raise MigrationError(f"{LAYOUT_KEY} = {text!r} says a migration runs, but there is no "
                             f"{PROGRESS_KEY}: the state is unknown; restore {LAYOUT_KEY}")
    revision = _text(raw_rev)
    if revision is None:
        base = [r for r in history() if r.layout == (layout or 1)]
        revision = base[0].revision
    return Status(revision, layout, progress)


def _progress(raw: Any) -> dict[str, str] | None:
    """HGETALL's reply (redis-py's dict, or the flat list) as text, ``None`` if empty."""
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {_text(k) or "": _text(v) or "" for k, v in pairs} or None


def status(url: str) -> Status:
    """The revision, the recorded layout and any unfinished revision of a server."""
    with admin_runner(url) as runner:
        return _read(runner)


def current(url: str) -> str:
    """The last revision applied to the server at ``url`` (``0001``: layout 1, the base)."""
    return status(url).revision


# -- running ------------------------------------------------------------------------

Progress = Callable[[str, int, int], None]
"""``progress(step, scanned, total)``: after each SCAN batch, the revision and phase, the
keys scanned in that phase so far and the keys of the database (``DBSIZE``)."""


def upgrade(url: str, target: str = "head", *, dry_run: bool = False,
            batch: int = DEFAULT_BATCH, progress: Progress | None = None) -> MigrationReport:
    """Apply the revisions after the server's current one, up to ``target``.

    A revision left unfinished by a runner that stopped is resumed first. With
    ``dry_run`` nothing is written: the report has the revisions that would run and
    the keys each would touch, counted per family. ``progress``: see :data:`Progress`.
    """
    return _run(url, "upgrade", target, dry_run, batch, progress)


def downgrade(url: str, target: str, *, dry_run: bool = False,
              batch: int = DEFAULT_BATCH, progress: Progress | None = None) -> MigrationReport:
    """Undo revisions, newest first, until ``target`` is the current one (``base``: 0001)."""
    return _run(url, "downgrade", target, dry_run, batch, progress)


def _run(url: str, direction: str, target: str, dry_run: bool, batch: int,
         on_batch: Progress | None = None) -> MigrationReport:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive int, got {batch!r}")
    chain = history()
    with admin_runner(url) as runner:
        state = _read(runner)
        now = _index(state.revision)
        goal = _index(target)
        if direction == "upgrade" and target in ("head", "heads"):
            goal = max(goal, now)  # data past head (an opt-in revision) is up to date
        report = MigrationReport(direction, state.revision, chain[goal].revision, dry_run)
        todo: list[tuple[Revision, dict[str, str] | None]] = []
        progress = state.in_progress
        if progress is not None:
            running = _index(progress["revision"])
            if progress.get("direction") != direction:
                raise MigrationError(
                    f"a {progress.get('direction')} of revision {progress['revision']} was "
                    f"interrupted; run `agentmem migrate {progress.get('direction')}` to "
                    "finish it first")
            todo.append((chain[running], progress))
            # the run starts where the interrupted one stood: below the revision it was
            # applying (above it, for a downgrade); the recorded layout says "a>b" meanwhile
            report.start = (_parent(chain[running]) if direction == "upgrade"
                            else chain[running]).revision
            now = running if direction == "upgrade" else running - 1
            if direction == "upgrade" and target in ("head", "heads"):
                goal = max(goal, now)  # an opt-in revision left unfinished: finish it
                report.target = chain[goal].revision
        if direction == "upgrade":
            if goal < now:
                raise MigrationError(f"target {chain[goal].revision} is below the current "
                                     f"revision {chain[now].revision}; use downgrade")
            todo += [(rev, None) for rev in chain[now + 1:goal + 1]]
        else:
            if goal > now:
                raise MigrationError(f"target {chain[goal].revision} is above the current "
                                     f"revision {chain[now].revision}; use upgrade")
            todo += [(chain[i], None) for i in range(now, goal, -1)]
        if isinstance(runner, ClusterRunner):
            below = [rev.revision for rev, _ in todo
                     if min(_parent(rev).layout, rev.layout) < 2 and rev.revision != "0001"]
            if below:
                raise MigrationError(
                    f"revision {below[0]} moves keys between layout 1 and 2: a Redis Cluster "
                    "holds layouts 2 to 4 only (layout 1's keys have no hash tags); migrate "
                    "layout-1 data on one server, then move it; nothing was written")
        renames = [(_parent(rev).layout, rev.layout) for rev, resume in todo
                   if resume is None and _moves_records(_parent(rev).layout, rev.layout)]
        if renames:  # before any revision runs
            old, new = renames[0] if direction == "upgrade" else renames[0][::-1]
            _refuse_unarchived(runner, old, new)
        data_layout = state.layout or 1
        for rev, resume in todo:
            data_layout = _apply(runner, rev, direction, batch, dry_run, resume, data_layout,
                                 report, on_batch)
        return report


def _moves_records(old: int, new: int) -> bool:
    """Whether going from layout ``old`` to ``new`` changes what an outbox entry names:
    an action's hash key, or the fields its hash is read by (layouts 3 and 4 differ in
    two indices' kind only)."""
    a, b = layout_of(old).action, layout_of(new).action
    return a.key.pattern != b.key.pattern or \
        a.codec.hash_names != b.codec.hash_names


def _refuse_unarchived(runner: Runner, old: int, new: int) -> None:
    """Refuse to rename the keys while dual writers' outboxes list some: an outbox names
    each action by its hash key of layout ``old``, which the renames would take away, and
    the recovery would find the hash gone and never archive it."""
    registry = state_keys(runner).outboxes
    outboxes = sorted(_text(k) or "" for k in runner.run(
        single(command("SMEMBERS", registry), list)))
    if not outboxes:
        return
    sizes = runner.run(Plan(tuple(command("LLEN", k) for k in outboxes), every_reply))
    listed = sum(int(n) for n in sizes)
    if listed:
        raise MigrationError(
            f"{listed} actions listed in dual writers' outboxes ({registry}) are not "
            f"archived yet, under their keys of layout {old}: moving the keys to layout "
            f"{new} would leave the outboxes naming keys that are gone, and those actions "
            "would never be archived. Close the writers, or drain the outboxes of writers "
            "that were killed (`agentmem archive --all`), then migrate; nothing was written")


def _parent(rev: Revision) -> Revision:
    chain = history()
    return chain[max(0, _index(rev.revision) - 1)]


def _apply(runner: Runner, rev: Revision, direction: str, batch: int, dry_run: bool,
           resume: dict[str, str] | None, data_layout: int, report: MigrationReport,
           on_batch: Progress | None = None) -> int:
    parent = _parent(rev)
    up = direction == "upgrade"
    old, new = (parent.layout, rev.layout) if up else (rev.layout, parent.layout)
    if not dry_run:
        data_layout = old
        if resume is None:
            runner.run(_set_state(state_keys(runner), layout=f"{old}>{new}" if old != new else "",
                                  progress={"revision": rev.revision, "direction": direction}))
    ctx = Context(runner, rev, direction, batch=batch, dry_run=dry_run,
                  data_layout=data_layout, resume=resume, progress=on_batch)
    step: Callable[[Context], None] = rev.module.upgrade if up else rev.module.downgrade
    step(ctx)
    report.revisions.append(rev.revision)
    report.counts[rev.revision] = dict(ctx.counters)
    if dry_run:
        return data_layout
    runner.run(_set_state(state_keys(runner), layout=str(new),
                          revision=rev.revision if up else parent.revision))
    return new
