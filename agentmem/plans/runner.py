"""How repositories share one definition between blocking and asyncio clients.

A repository method is written once, as a builder returning a :class:`Plan`,
and decorated with :class:`operation`. On a blocking repository it returns the
result; on an asyncio repository it returns an awaitable of the same result; on a
batch's repository (:mod:`agentmem.repository.batch`) a
:class:`~agentmem.plans.batch.Handle` of the result, there once the batch has run.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from agentmem.plans.batch import Handle
from agentmem.plans.plan import Plan

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")


class SyncRunner(Protocol):
    def run(self, plan: Plan[T]) -> T: ...


class AsyncRunner(Protocol):
    def run(self, plan: Plan[T]) -> Awaitable[T]: ...


class QueueRunner(Protocol):
    def run(self, plan: Plan[T]) -> Handle[T]: ...


class Blocking:
    """Marker base of repositories whose operations return results."""

    runner: SyncRunner


class Asynchronous:
    """Marker base of repositories whose operations return awaitables."""

    runner: AsyncRunner


class Batching:
    """Marker base of a batch's repositories: operations queue their plan and return a
    :class:`~agentmem.plans.batch.Handle` (the runner is the batch's queue)."""

    runner: QueueRunner


class operation(Generic[S, P, T]):  # noqa: N801 - used as a decorator
    """Turn a plan builder into a method that runs the plan on the instance's runner."""

    def __init__(self, build: Callable[Concatenate[S, P], Plan[T]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> operation[S, P, T]: ...
    @overload
    def __get__(self, obj: Asynchronous, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Batching, owner: type) -> Callable[P, Handle[T]]: ...

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        build: Any = self.build
        runner = obj.runner
        if isinstance(obj, Asynchronous):

            async def call_async(*args: P.args, **kwargs: P.kwargs) -> T:
                result: T = await runner.run(build(obj, *args, **kwargs))
                return result

            bound: Any = functools.update_wrapper(call_async, build)
        else:

            def call(*args: P.args, **kwargs: P.kwargs) -> T:
                return runner.run(build(obj, *args, **kwargs))  # type: ignore[no-any-return]

            bound = functools.update_wrapper(call, build)
        obj.__dict__[self.name] = bound  # later lookups skip the descriptor
        return bound
