"""Batches: any operations of any repositories, answered in one round trip.

    with mem.batch() as b:
        recent = {a: b.actions.recent(a, 10) for a in agents}
        moves = {a: b.actions.by_type(a, "move", limit=10) for a in agents}
    recent["a1"].result()

A batch's repositories (``b.actions``, ``b.im_actions``, ``b.repository(spec)``)
have every operation of the store's, with the same arguments; each call builds its
plan at once (bad input raises there, and nothing is queued) and returns a
:class:`~agentmem.plans.batch.Handle`. Leaving the ``with`` block (or
:meth:`Batch.run`) sends every queued call in one pipeline, in the order called, and
fills the handles (:func:`~agentmem.plans.batch.combine`). :class:`Batch` and
:class:`AsyncBatch` share everything but the one line that runs the combined plan.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agentmem.errors import ConfigError, NotRun
from agentmem.model.records import IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.batch import Entry, Handle, combine, fail_pending, queued, script_loads
from agentmem.plans.plan import Plan
from agentmem.plans.runner import AsyncRunner, Batching, SyncRunner, operation
from agentmem.repository.actions import ActionOps
from agentmem.repository.base import RecordOps

__all__ = ["AsyncBatch", "Batch", "BatchActionRepository", "BatchRepository", "rebind"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V", bound=RecordOps[Any])
R = TypeVar("R", SyncRunner, AsyncRunner)


class BatchActionRepository(ActionOps, Batching):
    """The action operations of a batch: each returns a :class:`Handle`."""


class BatchRepository(RecordOps[M], Batching):
    """The operations of a declared model in a batch: each returns a :class:`Handle`."""


class _Queue:
    """The runner of a batch's repositories: it queues plans instead of running them."""

    def __init__(self, runner: Any) -> None:
        self.cluster = bool(getattr(runner, "cluster", False))
        self.entries: list[Entry] = []
        self.refused: dict[str, str] = {}  # key pattern -> why its adds are refused

    def run(self, plan: Plan[T]) -> Handle[T]:
        if plan.adds is not None and plan.adds in self.refused:
            raise ConfigError(self.refused[plan.adds])
        handle: Handle[T] = Handle()
        self.entries.append(queued(plan, handle))
        return handle


def rebind(repo: RecordOps[Any], cls: type[V], runner: Any) -> V:
    """An instance of ``cls`` with ``repo``'s settings and state, running its operations
    on ``runner`` (a batch's queue; :mod:`agentmem.store.guard`'s runner)."""
    out = cls.__new__(cls)
    ops = type(repo)
    out.__dict__.update({name: value for name, value in vars(repo).items()
                         if not isinstance(getattr(ops, name, None), operation)})
    out.runner = runner
    return out


class _BatchBase(Generic[R]):
    """What a blocking and an asyncio batch share: the repositories and the queue."""

    def __init__(self, runner: R, actions: ActionOps, im_actions: RecordOps[IMAction],
                 batch_size: int, *, loaded: set[str] | None = None) -> None:
        self.runner: R = runner
        self._queue = _Queue(runner)
        self._batch_size = batch_size
        self._loaded = loaded
        """The scripts the store's batches sent (one server): the others are loaded first,
        in the same round trip, so that no call runs late after a ``NOSCRIPT``."""
        self.actions = rebind(actions, BatchActionRepository, self._queue)
        """The action repository's operations, queued."""
        self.im_actions: BatchRepository[IMAction] = rebind(im_actions, BatchRepository,
                                                           self._queue)
        """Intermediate-memory actions (``IMAction``), queued."""

    def repository(self, spec: RecordSpec[M]) -> BatchRepository[M]:
        """The operations of any declared model, queued in this batch."""
        return BatchRepository(self._queue, spec, batch_size=self._batch_size,
                               write_columns=self.actions.write_columns)

    def refuse_adds(self, pattern: str, why: str) -> None:
        """From now on, an operation that would add records of the key pattern
        ``pattern`` (any repository of the batch) raises :class:`ConfigError` with
        ``why`` when it is queued, and queues nothing (an ``agentmem.open`` store with an
        archive refuses its actions' adds this way, ``docs/dualwrite.md``)."""
        self._queue.refused[pattern] = why

    def __len__(self) -> int:
        """The operations queued and not run yet."""
        return len(self._queue.entries)

    def _take(self) -> tuple[list[Entry], Plan[None] | None]:
        entries, self._queue.entries = self._queue.entries, []
        if not entries:
            return entries, None
        loads = [] if self._loaded is None else script_loads(entries, self._loaded)
        return entries, combine(loads + entries)

    def _abandon(self) -> None:
        entries, self._queue.entries = self._queue.entries, []
        fail_pending(entries, NotRun("its batch did not run: the `with` block raised"))


class Batch(_BatchBase[SyncRunner]):
    """A blocking batch (``Memory.batch()``): :meth:`run`, or a ``with`` block that runs
    it on leaving (unless the block raised: then nothing is sent)."""

    def run(self) -> None:
        """Send every queued call in one round trip and fill the handles; the batch is
        empty again afterwards. A failure of the whole round trip (the server
        unreachable) is raised here and from every handle it left without a result."""
        entries, plan = self._take()
        if plan is None:
            return
        try:
            self.runner.run(plan)
        except BaseException as exc:
            fail_pending(entries, exc)
            raise

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.run()
        else:
            self._abandon()


class AsyncBatch(_BatchBase[AsyncRunner]):
    """The asyncio batch (``AsyncMemory.batch()``): ``await b.run()`` or ``async with``."""

    async def run(self) -> None:
        """As :meth:`Batch.run`."""
        entries, plan = self._take()
        if plan is None:
            return
        try:
            await self.runner.run(plan)
        except BaseException as exc:
            fail_pending(entries, exc)
            raise

    async def __aenter__(self) -> AsyncBatch:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            await self.run()
        else:
            self._abandon()
