"""Command plans: what to send, and how to read the replies; no I/O.

A repository method builds a :class:`Plan`; a runner (blocking, asyncio or
cluster, in :mod:`agentmem.backends`) sends its calls in one round trip and
hands the replies to ``plan.parse``. Only the runner differs between clients.
"""

from __future__ import annotations

import gc
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentmem.errors import InvalidInput
from agentmem.lua.scripts import Script

T = TypeVar("T")
U = TypeVar("U")
Arg = str | bytes | int | float

LEAST_REPLY = 3
"""Bytes of the shortest RESP reply: an empty status ``+\\r\\n`` or RESP3's ``_\\r\\n``."""

LEAST_TEXT_FIRST = 10
"""Bytes of the shortest array whose first element is a text, ``*1\\r\\n$0\\r\\n\\r\\n``
(any error reply the server gives a script call is longer: ``-NOSCRIPT ...`` 31
bytes, ``-NOAUTH ...`` 34, ``-ERR ...`` of a script 76 or more, measured). What a write
call states (``plans/write.py``, ``plans/colwrite.py``): the reply of
``lib/write_body.lua`` is such an array, its first element the stamp (``''`` for a
model without one) or, when nothing was written, a ``'\\0'`` text naming why."""


@dataclass(frozen=True)
class Call:
    """One command. For a script, ``args`` is the EVALSHA command and ``script`` its source."""

    args: tuple[Arg, ...]
    script: Script | None = None
    route: str | None = None
    """A cluster runner's routing key (not sent): the call runs on this key's slot.
    ``None``: the first key of the command (for a script, ``KEYS[1]`` or else its
    first argument). One server ignores it."""
    least_reply: int = LEAST_REPLY
    """Bytes its reply takes at least, whatever it is (an error too): the reply wait
    (:mod:`agentmem.backends.wakes`) sleeps until the replies due can have come whole.
    A bound, never a guess: a reply shorter than this makes the reader wait out the
    socket's timeout (or a second, without one) before it reads."""


def script_call(script: Script, argv: Sequence[Arg], keys: Sequence[str] = (),
                route: str | None = None, least_reply: int = LEAST_REPLY) -> Call:
    return Call(("EVALSHA", script.sha, len(keys), *keys, *argv), script, route,
                least_reply)


def command(*args: Arg) -> Call:
    return Call(tuple(args))


@dataclass(frozen=True)
class Plan(Generic[T]):
    """Calls to send in one round trip, and the function that reads their replies.

    ``calls`` may be a lazy iterable: a runner sends each call as soon as it is
    built, so building the next overlaps the server running the previous one.
    A plan is run once. ``parse`` receives one reply per call, in order; a call
    the server refused is an :class:`~agentmem.errors.BackendError` instance in
    its place, so a plan can tell what was done from what was not.
    """

    calls: Iterable[Call]
    parse: Callable[[list[Any]], T]
    bulk: bool = False
    """Many records: the runner pauses the cyclic garbage collector while it runs."""
    adds: str | None = None
    """The key pattern of the records the plan stores, when it stores new ones (a write
    of ``add``, ``add_many``, ``add_rows``...): a store whose actions are archived
    refuses those of its actions outside its dual writer (:mod:`agentmem.store.guard`).
    A plan that follows up with such a write (a look at the grid cell first) has it
    too."""
    guarded: bool = False
    """A dual writer's write (its outbox's): refused, before anything is sent, by the
    runner's restart guard while Redis has lost the writer's retired marks
    (:mod:`agentmem.backends.restarts`)."""

    def map(self, f: Callable[[T], U]) -> Plan[U]:
        """The same calls, with ``f`` applied to the parsed result."""
        parse = self.parse

        def mapped(raw: list[Any]) -> U:
            try:
                return f(parse(raw))
            except FollowUp as more:
                raise FollowUp(more.plan.map(f)) from None

        return Plan(self.calls, mapped, self.bulk, self.adds, self.guarded)


class FollowUp(Exception):
    """Raised by ``Plan.parse`` when the answer needs another round trip.

    The runner runs ``plan`` and returns its result instead. Used only on rare
    paths (a write the server partly refused is retried without the refused
    records), never in the common case.
    """

    def __init__(self, plan: Plan[Any]) -> None:
        super().__init__("follow-up plan")
        self.plan = plan


class _PausedGC:
    """The garbage collector paused from ``__enter__`` to ``__exit__``."""

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.enable()


_NO_PAUSE = nullcontext()


def paused_gc(pause: bool) -> AbstractContextManager[None]:
    """Pause the cyclic garbage collector while a bulk plan runs.

    Encoding thousands of records allocates many short-lived containers, none
    of them in reference cycles; the collector's repeated scans of that growing
    heap cost more than the encoding itself. Reference counting still frees
    everything; the collector resumes (if it was on) when the plan is done.
    Without a pause (the common single write) this costs next to nothing.
    """
    if not pause or not gc.isenabled():
        return _NO_PAUSE
    return _PausedGC()


def run_through(run_once: Callable[[Plan[Any]], Any], plan: Plan[T]) -> T:
    """Run ``plan`` with a blocking runner's ``run_once`` (one round trip, returning
    the result or a :class:`FollowUp`), and its follow-ups, until there is a result;
    the garbage collector paused for bulk plans (:func:`paused_gc`)."""
    current: Plan[Any] = plan
    while True:
        with paused_gc(current.bulk):
            result = run_once(current)
        if not isinstance(result, FollowUp):
            return result  # type: ignore[no-any-return]
        current = result.plan


def every_reply(raw: list[Any]) -> list[Any]:
    """A plan's ``parse`` for plans that need every call: the replies as they are, the
    first refused call raised."""
    for r in raw:
        if isinstance(r, Exception):
            raise r
    return raw


def single(call: Call, parse: Callable[[Any], T]) -> Plan[T]:
    """A plan of one call whose reply is parsed by ``parse`` (an error reply is raised)."""

    def parse_one(raw: list[Any]) -> T:
        if isinstance(raw[0], Exception):
            raise raw[0]
        return parse(raw[0])

    return Plan((call,), parse_one)


def score_arg(value: float | None, default: str) -> str:
    """A sorted-set bound: ``None`` is open, finite numbers are exact, ±inf allowed."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidInput(f"score bound must be a number, got {value!r}")
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return repr(float(value))


MAX_INDEX = 10**12
"""The largest limit, offset or rank a query takes: far beyond any index, and small
enough that the scripts' arithmetic on it stays exact (Lua numbers are doubles, and
Redis passes a Lua number to a command with 14 significant digits)."""


def _plain_int(value: object) -> int | None:
    """``value`` as a plain ``int`` when it is an integer (an ``int``, an ``IntEnum``, a
    numpy integer: anything with ``__index__``) and not a ``bool``; else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def check_limit(limit: int | None) -> int:
    """A limit as the plain ``int`` the scripts get (``None``: ``-1``, no limit)."""
    if limit is None:
        return -1
    n = _plain_int(limit)
    if n is None or n < 0:
        raise InvalidInput(f"limit must be a non-negative int or None, got {limit!r}")
    if n > MAX_INDEX:
        raise InvalidInput(f"limit must be at most 10**12 (None: no limit), got {n}")
    return n


def check_index(name: str, value: int) -> int:
    """An offset or rank (negative: from the end), within ±:data:`MAX_INDEX`, as a plain
    ``int``."""
    n = _plain_int(value)
    if n is None:
        raise InvalidInput(f"{name} must be an int, got {value!r}")
    if not -MAX_INDEX <= n <= MAX_INDEX:
        raise InvalidInput(f"{name} must be within ±10**12, got {n}")
    return n
