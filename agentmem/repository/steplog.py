"""A simulation's steps, logged as columns and written many steps per write.

    with mem.actions.step_log(every=10_000) as log:
        for step in range(steps):
            log.add(columns_of(step))     # validated now; written every 10,000 records

A step of a few hundred records written at once (``add_columns``) pays a write's
fixed cost, a round trip and a wait for the server on every step: about twice the
client CPU per record of a write of 10,000 (``docs/performance.md``). A
:class:`StepLog` validates each step when it is added (:class:`~agentmem.errors.InvalidInput`
there, and nothing of that step kept) and holds it, encoded, until ``every`` records
wait; then one write stores them all, in order, as ``add_columns`` of their
concatenation would (the same checks ran, the same bytes are stored).

Durability (``docs/durability.md``): a step held by the log is in this process only.
It is acknowledged when the call that writes it returns (the ``add`` that reached
``every``, :meth:`StepLog.flush`, or leaving the ``with`` block, which flushes whether
or not the block raised); until then a crash of the process loses it, and readers of
the store do not see it. A write that raises has taken the held steps with it: the
exception says what was stored, as ``add_columns``' does. One log per thread (it is
not locked). :class:`StepLog` and :class:`AsyncStepLog` share everything but the line
that runs a write. Imports the repository and the plans.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentmem.errors import ConfigError
from agentmem.plans.colplan import ColumnRows, concat
from agentmem.plans.plan import Plan
from agentmem.plans.runner import AsyncRunner, SyncRunner
from agentmem.plans.write import Prepared

if TYPE_CHECKING:
    from agentmem.repository.base import RecordOps

__all__ = ["STEP_LOG_EVERY", "AsyncStepLog", "AsyncStepLogs", "StepLog", "StepLogs"]

R = TypeVar("R", SyncRunner, AsyncRunner)

STEP_LOG_EVERY = 10_000
"""Records a step log holds before it writes them (``every``)."""


class _StepLogBase(Generic[R]):
    """What a blocking and an asyncio step log share: the validation and the held steps."""

    def __init__(self, repo: RecordOps[Any], runner: R, every: int) -> None:
        if type(every) is not int or every < 1:
            raise ConfigError(f"every must be a positive int (records per write), "
                              f"got {every!r}")
        refusal = getattr(runner, "refusal", None)  # a store that archives its actions
        why = refusal(repo.spec.key.pattern) if refusal is not None else None
        if why:
            raise ConfigError(why)
        self._repo = repo
        self._runner: R = runner
        self.every = every
        """Records held before a write (the ``add`` that reaches it writes them all)."""
        self._held: list[Sequence[Prepared]] = []
        self._count = 0

    def __len__(self) -> int:
        """The records added and not written yet."""
        return self._count

    def _add(self, columns: Mapping[str, Sequence[Any]]) -> list[Plan[list[str]]]:
        """``columns`` validated and held; the writes to run now, in order: every held
        record once ``every`` wait. A step that gives ids of its own is written at once,
        alone, after what is held: in a write of several steps the given ids are set
        aside first, so an earlier step's generated id could go to its record, and a
        refusal of one of them would send the records of later steps in its call
        after the others (``add_columns`` of each step does neither)."""
        part = self._repo._prepare_columns(columns)  # raises: nothing of it is held
        if not len(part):
            return []
        if _gives_ids(part):
            held = self._take()
            return [self._repo._rows_plan(part)] if held is None else \
                [held, self._repo._rows_plan(part)]
        self._held.append(part)
        self._count += len(part)
        held = self._take() if self._count >= self.every else None
        return [] if held is None else [held]

    def _take(self) -> Plan[list[str]] | None:
        """The write of every held record (the log holds none afterwards), or None."""
        if not self._held:
            return None
        held, self._held, self._count = self._held, [], 0
        return self._repo._rows_plan(concat(held))


@contextmanager
def _noted() -> Iterator[None]:
    """An exception of a step log's write, with a note that the log no longer holds
    what that write carried."""
    try:
        yield
    except Exception as exc:
        exc.add_note("the step log no longer holds the records of this write: those "
                     "Redis stored stay stored, the others are not written")
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
        records this call wrote, in order: every held record once ``every`` are held
        (this step's last), else none (an empty list)."""
        ids: list[str] = []
        with _noted():
            for plan in self._add(columns):
                done: list[str] = self._runner.run(plan)
                ids += done
        return ids

    def flush(self) -> list[str]:
        """Write every held record now (one write); returns their ids, in order."""
        plan = self._take()
        with _noted():
            return [] if plan is None else self._runner.run(plan)

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()  # what was added was valid: written even if the block raised


class AsyncStepLog(_StepLogBase[AsyncRunner]):
    """The asyncio step log (``await log.add(...)``, ``async with``); as :class:`StepLog`."""

    async def add(self, columns: Mapping[str, Sequence[Any]]) -> list[str]:
        """As :meth:`StepLog.add`."""
        ids: list[str] = []
        with _noted():
            for plan in self._add(columns):
                done: list[str] = await self._runner.run(plan)
                ids += done
        return ids

    async def flush(self) -> list[str]:
        """As :meth:`StepLog.flush`."""
        plan = self._take()
        with _noted():
            return [] if plan is None else await self._runner.run(plan)

    async def __aenter__(self) -> AsyncStepLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()


class StepLogs:
    """``step_log()`` of a blocking repository."""

    runner: SyncRunner

    def step_log(self, every: int = STEP_LOG_EVERY) -> StepLog:
        """A :class:`StepLog` of this repository's records: steps added as columns,
        validated at once, written ``every`` records at a time (see
        :mod:`agentmem.repository.steplog`)."""
        repo: RecordOps[Any] = self  # type: ignore[assignment]
        return StepLog(repo, self.runner, every)


class AsyncStepLogs:
    """``step_log()`` of an asyncio repository."""

    runner: AsyncRunner

    def step_log(self, every: int = STEP_LOG_EVERY) -> AsyncStepLog:
        """As :meth:`StepLogs.step_log`, for asyncio (``await log.add(...)``)."""
        repo: RecordOps[Any] = self  # type: ignore[assignment]
        return AsyncStepLog(repo, self.runner, every)
