"""A simulation's steps, logged as columns and written many steps per write.

    with mem.actions.step_log(every=10_000, within=5.0) as log:
        for step in range(steps):
            log.add(columns_of(step))     # validated now; written every 10,000 records,
                                          # or by the first add 5 s after the oldest held

A step of a few hundred records written at once (``add_columns``) pays a write's
fixed cost, a round trip and a wait for the server on every step: about twice the
client CPU per record of a write of 10,000 (``docs/performance.md``). A
:class:`StepLog` validates each step when it is added (:class:`~agentmem.errors.InvalidInput`
there, and nothing of that step kept) and holds it, encoded, until ``every`` records
wait; then one write stores them all, in order. What is stored is what ``add_columns``
of each step, one after the other, stores: steps share a write only where one write
stores the same. A step that gives ids, and every step of a model with a capped index
of field values, is written alone as it is added (:meth:`_StepLogBase._hold`); when
held steps are due, they are cut where their ids are alike or hold a ``.``
(:func:`_split`: one look at the whole write's ids, not one per step).

Durability (``docs/durability.md``): a step held by the log is in this process only.
It is acknowledged when the call that writes it returns (the ``add`` that reached
``every``, or that came ``within`` seconds or more after the oldest held step was added,
:meth:`StepLog.flush`, or leaving the ``with`` block, which flushes whether or not the
block raised); until then a crash of the process loses it, and readers of the store do
not see it. ``within`` bounds how long a step is held only while steps are added: no
timer runs, so a log with no ``add`` holds its steps until ``flush``, and an ``add``
that raises (a bad step) writes nothing. A write that
raises has taken its own steps with it (what it stored stays stored; the exception
carries a note), and what was held after them stays held. One log per thread or
asyncio task (it is not locked). :class:`StepLog` and :class:`AsyncStepLog` share
everything but the line that runs a write. Imports the repository and the plans.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Real
from time import monotonic
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentmem.errors import ConfigError
from agentmem.plans.colplan import ColumnRows
from agentmem.plans.colwrite import ColumnBatcher
from agentmem.plans.plan import Plan
from agentmem.plans.runner import AsyncRunner, SyncRunner
from agentmem.plans.write import Prepared

if TYPE_CHECKING:
    from agentmem.repository.base import RecordOps

__all__ = ["STEP_LOG_EVERY", "AsyncStepLog", "AsyncStepLogs", "StepLog", "StepLogs"]

R = TypeVar("R", SyncRunner, AsyncRunner)

STEP_LOG_EVERY = 10_000
"""Records a step log holds before it writes them (``every``)."""


class _Run:
    """Held steps that one write may store: a step alone as it was prepared, or steps
    whose columns are joined as they are added (each step's own lists are dropped at
    once: the garbage collector's young generation does not fill with held lists).
    Whether joined steps do share a write is decided when it is due (:func:`_split`)."""

    __slots__ = ("absent", "bases", "born", "cols", "count", "due", "part", "sizes")

    def __init__(self, part: Sequence[Prepared], bases: Sequence[str], alone: bool) -> None:
        self.born = monotonic()
        """When the run's first step was added (a step log's ``within``)."""
        self.count = len(part)
        self.due = alone
        """Written at the next write, whatever ``every`` says, and joined to no later
        step: a step alone (see :meth:`_StepLogBase._hold`), or a part of due steps
        that :func:`_split` cut."""
        self.part: Sequence[Prepared] | None = part if alone else None
        """A step alone, as it was prepared (None: joined steps)."""
        self.sizes: list[int] = [len(part)]
        """Each step's count of records, in order."""
        self.bases: list[str] = []
        self.cols: list[list[Any]] = []
        self.absent: list[bool | None] = []
        if not alone:  # copied: the step's columns may be the caller's lists
            cols, absent = _columns(part)
            self.bases = list(bases)
            self.cols = [list(c) for c in cols]
            self.absent = list(absent)

    def take(self, part: Sequence[Prepared], bases: Sequence[str]) -> None:
        """``part``'s records after the run's (ids generated)."""
        cols, absent = _columns(part)
        for col, more in zip(self.cols, cols, strict=True):
            col.extend(more)
        if absent != self.absent:
            self.absent = [None if a is None or b is None else a or b
                           for a, b in zip(self.absent, absent, strict=True)]
        self.bases.extend(bases)
        self.count += len(part)
        self.sizes.append(len(part))

    def prepared(self) -> Sequence[Prepared]:
        """The records of a run :func:`_split` returned, as one write takes them."""
        if self.part is not None:
            return self.part
        out = ColumnRows("g", self.bases, self.cols, self.absent)
        out.plain = True  # (_split's: distinct ids, none holding a ".")
        return out


def _split(run: _Run) -> list[_Run]:
    """``run`` as the writes that store what ``add_columns`` of each of its steps, one
    after the other, stores: itself when its ids are distinct and none holds a ``.``
    (the write's renumbering then guesses nothing); else cut by step. A step with two
    ids alike or an id holding a ``.`` is written alone (the client guesses the
    server's renumbering within one write, ``k`` then ``k.1``, which a write per step
    does not share), and a step with an id that the steps before it in the same write
    have starts a new write (their records would be renumbered otherwise)."""
    bases = run.bases
    if len(set(bases)) == len(bases) and "." not in "".join(bases):
        return [run]
    out: list[_Run] = []
    cur: _Run | None = None
    seen: set[str] = set()
    at = 0
    for size in run.sizes:
        part = ColumnRows("g", bases[at:at + size], [c[at:at + size] for c in run.cols])
        ids = set(part.bases)
        alone = len(ids) < size or "." in "".join(part.bases)
        if alone:
            out.append(_Run(part, part.bases, True))
            cur = None
        elif cur is not None and seen.isdisjoint(ids):
            cur.take(part, part.bases)
            seen |= ids
        else:
            cur = _Run(part, part.bases, False)
            out.append(cur)
            seen = ids
        at += size
    return out


def _columns(part: Sequence[Prepared]) -> tuple[Sequence[Sequence[Any]],
                                                 Sequence[bool | None]]:
    """A step's stored values as columns, and whether each holds None (where known)."""
    if type(part) is ColumnRows:
        return part.cols, part.absent
    cols = list(zip(*[p.vals for p in part], strict=True))
    return cols, [None] * len(cols)


class _StepLogBase(Generic[R]):
    """What a blocking and an asyncio step log share: the validation and the held steps."""

    def __init__(self, repo: RecordOps[Any], runner: R, every: int,
                 within: float | None = None) -> None:
        if type(every) is not int or every < 1:
            raise ConfigError(f"every must be a positive int (records per write), "
                              f"got {every!r}")
        if within is not None:
            try:
                seconds = float(within) if isinstance(within, Real) \
                    and not isinstance(within, bool) else math.nan
            except (OverflowError, ValueError):
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds >= 0):
                raise ConfigError(f"within must be None or a finite number of seconds, "
                                  f"0 or more, got {within!r}")
            within = seconds
        refusal = getattr(runner, "refusal", None)  # a store that archives its actions
        why = refusal(repo.spec.key.pattern) if refusal is not None else None
        if why:
            raise ConfigError(why)
        self._repo = repo
        self._runner: R = runner
        self.every = every
        """Records held before a write (the ``add`` that reaches it writes them all)."""
        self.within = within
        """Seconds a step is held at most, counted at each ``add``: the first ``add`` this
        long or longer after the oldest held step was added writes what is held (None:
        no bound; no timer runs between adds)."""
        self._runs: list[_Run] = []
        self._merge = repo._column_batcher() is not None or ColumnBatcher(repo.writer).ok
        """Whether steps may share a write: the model's indexes store the same whether
        its records come in one write or several (no capped index of field values, no
        two indexes on one key), one server."""

    def __len__(self) -> int:
        """The records added and not written yet."""
        return sum(run.count for run in self._runs)

    def __bool__(self) -> bool:
        return True  # a log, empty or not (not a container: ``log or ...`` means it)

    def _hold(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """``columns`` validated (raises: nothing of it is held) and held: joined to the
        steps before it, or, when it gives ids of its own or the model's steps may not
        share a write, alone (one write of several steps sets given ids aside first, so
        an earlier step's generated id could go to its record). When the joined steps
        are due, :func:`_split` cuts them where one write would store otherwise than a
        write per step (ids alike or holding a ``.``)."""
        merge = self._merge  # (joined steps are copied as they are joined)
        part = self._repo._prepare_columns(columns, copy=not merge)
        if not len(part):
            return
        alone = not merge or _gives_ids(part)
        if alone and merge and type(part) is ColumnRows:  # held as it is: a copy
            part = ColumnRows(part.mode, list(part.bases), [list(c) for c in part.cols],
                              part.absent)
        bases = part.bases if type(part) is ColumnRows else [p.base for p in part]
        last = self._runs[-1] if self._runs else None
        if not alone and last is not None and not last.due:
            last.take(part, bases)
        else:
            self._runs.append(_Run(part, bases, alone))

    def _next(self, everything: bool) -> Plan[list[str]] | None:
        """The next write, its steps no longer held, or None: the oldest held write once
        it is due (a later one began, it is due itself, it holds ``every`` records, or
        its first step was added ``within`` seconds ago or more), or with
        ``everything``, whatever is held. Joined steps are cut first where they
        may not share a write (:func:`_split`): the writes after the first are due,
        first in line."""
        runs = self._runs
        if not runs or not (everything or len(runs) > 1 or runs[0].due
                            or runs[0].count >= self.every
                            or (self.within is not None
                                and monotonic() - runs[0].born >= self.within)):
            return None
        run = runs.pop(0)
        if run.part is not None:
            return self._repo._rows_plan(run.part)
        cut = _split(run)
        for later in cut[1:]:
            later.due = True
        runs[:0] = cut[1:]
        return self._repo._rows_plan(cut[0].prepared())


@contextmanager
def _noted(before: int, log: _StepLogBase[Any]) -> Iterator[None]:
    """An exception of a step log's write, with a note that the log no longer holds
    what that write carried, what the call stored before it (``before`` records), and
    what the log still holds (the steps added after that write's, this call's too)."""
    try:
        yield
    except Exception as exc:
        exc.add_note("the step log no longer holds the records of this write: those "
                     "Redis stored stay stored, the others are not written" + (
                         f"; this call stored {before} records before it (their ids "
                         f"are not returned)" if before else "") +
                     f"; the log still holds {len(log)} records (added after them)")
        raise


def _gives_ids(part: Sequence[Prepared]) -> bool:
    """Whether any record of ``part`` has an id given (not generated from the template)."""
    if type(part) is ColumnRows:
        return part.mode != "g"
    return any(p.mode != "g" for p in part)


class StepLog(_StepLogBase[SyncRunner]):
    """A blocking step log (``repository.step_log()``; see the module)."""

    def add(self, columns: Mapping[str, Sequence[Any]]) -> list[str]:
        """Validate one step's records, given as ``add_columns`` takes them (field name
        to a sequence of values, one per record), and hold them. Returns the ids of the
        records this call wrote, in order: every held record once ``every`` are held,
        or once the oldest was added ``within`` seconds ago or more (this step's last),
        else none (an empty list). A step that gives ids (see
        :meth:`_hold`) is written now, alone, after what is held before it."""
        self._hold(columns)
        return self._write(False)

    def flush(self) -> list[str]:
        """Write every held record now; returns their ids, in order. If a write raises,
        what was held after it stays held."""
        return self._write(True)

    def _write(self, everything: bool) -> list[str]:
        ids: list[str] = []
        while (plan := self._next(everything)) is not None:
            with _noted(len(ids), self):
                done: list[str] = self._runner.run(plan)
            ids += done
        return ids

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()  # what was added was valid: written even if the block raised


class AsyncStepLog(_StepLogBase[AsyncRunner]):
    """The asyncio step log (``await log.add(...)``, ``async with``); as :class:`StepLog`."""

    async def add(self, columns: Mapping[str, Sequence[Any]]) -> list[str]:
        """As :meth:`StepLog.add`."""
        self._hold(columns)
        return await self._write(False)

    async def flush(self) -> list[str]:
        """As :meth:`StepLog.flush`."""
        return await self._write(True)

    async def _write(self, everything: bool) -> list[str]:
        ids: list[str] = []
        while (plan := self._next(everything)) is not None:
            with _noted(len(ids), self):
                done: list[str] = await self._runner.run(plan)
            ids += done
        return ids

    async def __aenter__(self) -> AsyncStepLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()


class StepLogs:
    """``step_log()`` of a blocking repository."""

    runner: SyncRunner

    def step_log(self, every: int = STEP_LOG_EVERY, within: float | None = None
                 ) -> StepLog:
        """A :class:`StepLog` of this repository's records: steps added as columns,
        validated at once, written ``every`` records at a time, or by the first ``add``
        ``within`` seconds or more after the oldest held step was added (see
        :mod:`agentmem.repository.steplog`)."""
        repo: RecordOps[Any] = self  # type: ignore[assignment]
        return StepLog(repo, self.runner, every, within)


class AsyncStepLogs:
    """``step_log()`` of an asyncio repository."""

    runner: AsyncRunner

    def step_log(self, every: int = STEP_LOG_EVERY, within: float | None = None
                 ) -> AsyncStepLog:
        """As :meth:`StepLogs.step_log`, for asyncio (``await log.add(...)``)."""
        repo: RecordOps[Any] = self  # type: ignore[assignment]
        return AsyncStepLog(repo, self.runner, every, within)
