"""Many plans in one round trip: their calls concatenated, each reply slice parsed apart.

A batch (:mod:`agentmem.repository.batch`) queues the plans of any operations of any
repositories, each with a :class:`Handle`; :func:`combine` makes them one plan that a
runner sends like any other (one pipeline, not a transaction). Its ``parse`` hands
each plan its own slice of the replies and puts the result, or the error that plan
raised, in the plan's handle: an error of one plan is that plan's alone. A plan whose
``parse`` asks for a :class:`~agentmem.plans.plan.FollowUp` (rare: a write the server
partly refused, a store's first look at the grid cell, a cluster write's entries in
other slots) gets it run afterwards, all such follow-ups of a batch together in one
more round trip. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from agentmem.errors import NotRun
from agentmem.lua.scripts import Script
from agentmem.plans.plan import Call, FollowUp, Plan, command

T = TypeVar("T")

BULK_CALLS = 256
"""A batch of at least this many calls runs as a bulk plan (the garbage collector
paused: :func:`~agentmem.plans.plan.paused_gc`), as a write of that many records does."""

_PENDING = 0
_DONE = 1
_FAILED = 2


class Handle(Generic[T]):
    """The result of one batched operation, there once its batch has run.

    :meth:`result` returns it, or raises the error the operation raised (its own
    alone: the other operations of the batch are not affected), or
    :class:`~agentmem.errors.NotRun` while the batch has not run.
    """

    __slots__ = ("_state", "_value", "name")

    def __init__(self, name: str = "a batched operation") -> None:
        self.name = name
        """What was called (for messages)."""
        self._state = _PENDING
        self._value: Any = None

    @property
    def done(self) -> bool:
        """True once the batch ran (with a result or an error)."""
        return self._state != _PENDING

    def result(self) -> T:
        """The operation's result; its error raised; :class:`NotRun` before the run."""
        if self._state == _DONE:
            value: T = self._value
            return value
        if self._state == _FAILED:
            raise self._value
        raise NotRun(f"{self.name}: the batch has not run yet (its result is there after "
                     "the `with` block, or after batch.run())")

    def exception(self) -> BaseException | None:
        """The error the operation raised, or ``None`` (:class:`NotRun` before the run)."""
        if self._state == _PENDING:
            self.result()
        return self._value if self._state == _FAILED else None

    def set_result(self, value: T) -> None:
        self._state, self._value = _DONE, value

    def set_error(self, error: BaseException) -> None:
        self._state, self._value = _FAILED, error

    def __repr__(self) -> str:
        state = ("pending", "done", "failed")[self._state]
        return f"<Handle {self.name} {state}>"


Entry = tuple[Sequence[Call], "Plan[Any]", Handle[Any]]
"""A queued plan: its calls (built when queued), the plan, its handle."""


def queued(plan: Plan[T], handle: Handle[T]) -> Entry:
    """``plan`` ready to join a batch: its calls built now, so that bad input raises
    where the operation is called, before anything is queued."""
    calls = plan.calls
    return (calls if isinstance(calls, (tuple, list)) else tuple(calls), plan, handle)


def combine(entries: Sequence[Entry]) -> Plan[None]:
    """One plan sending the calls of every entry, in order, and filling their handles.

    The result is ``None``: every outcome goes to a handle. The follow-ups the entries
    ask for are run together as one :class:`FollowUp` (a combined plan again)."""
    calls: list[Call] = []
    for entry in entries:
        calls.extend(entry[0])

    def parse(replies: list[Any]) -> None:
        more: list[Entry] = []
        pos = 0
        for entry_calls, plan, handle in entries:
            end = pos + len(entry_calls)
            try:
                handle.set_result(plan.parse(replies[pos:end]))
            except FollowUp as follow:
                try:
                    more.append(queued(follow.plan, handle))
                except Exception as exc:
                    handle.set_error(exc)
            except Exception as exc:
                handle.set_error(exc)
            pos = end
        if more:
            raise FollowUp(combine(more))

    return Plan(calls, parse, bulk=len(calls) >= BULK_CALLS
                or any(entry[1].bulk for entry in entries))


def fail_pending(entries: Sequence[Entry], error: BaseException) -> None:
    """Every handle still without an outcome gets ``error`` (the batch's run failed)."""
    for _, _, handle in entries:
        if not handle.done:
            handle.set_error(error)


def late_scripts(calls: Iterable[Call], loaded: set[str]) -> dict[str, Script]:
    """The scripts of ``calls`` (sent in this order to one server) to load before them so
    that none runs late, by sha; ``loaded``: the scripts that server is thought to have.

    A call refused with ``NOSCRIPT`` runs again after the others: harmless when every
    call after it is refused too (a flushed cache refuses every script: they run again
    in their order), not when a later call runs in its place (a command, or a script
    loaded now), which would then not see it. So a script is loaded when it is not in
    ``loaded``, or when a call that runs in its place follows one of its calls: a stale
    ``loaded`` (a server restarted, its scripts flushed) costs a retry, never the order
    of the calls."""
    load: dict[str, Script] = {}
    in_place_after = False
    for call in reversed(calls if isinstance(calls, Sequence) else list(calls)):
        script = call.script
        if script is None or script.sha in load:
            in_place_after = True
        elif in_place_after or script.sha not in loaded:
            load[script.sha] = script
            in_place_after = True
    return dict(reversed(load.items()))


def script_loads(entries: Sequence[Entry], loaded: set[str]) -> list[Entry]:
    """``SCRIPT LOAD`` entries, sent first in the same round trip, for the scripts of
    ``entries`` that could otherwise run late (:func:`late_scripts`; ``loaded``, the
    scripts earlier batches sent, gets them; one server only)."""
    load = late_scripts([call for entry in entries for call in entry[0]], loaded)
    loaded.update(load)
    return [((command("SCRIPT", "LOAD", script.source),), Plan((), _ignored), Handle())
            for script in load.values()]


def _ignored(replies: list[Any]) -> None:
    """A script load's reply: a refusal shows up again as the script's ``NOSCRIPT``."""
