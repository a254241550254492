"""Cursor pagination of listing queries: one round trip per page; no I/O.

A page is one call of :data:`~agentmem.lua.scripts.PAGE`, which walks an index from a
cursor and reads at most ``size`` records (plus the entries it passes over whose hash
has expired), never the whole index. A cursor is the position of the last record
returned, not an offset, so records added while a caller pages (anywhere in the
index) shift nothing: no record that existed when paging started is returned twice
or skipped.

Cursors are opaque text: ``"<score> <id>"`` for a sorted index (its score as the
server writes it, and the id that breaks ties), ``"i <id>"`` for a set read by id,
``"<position> "`` for a list.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agentmem.errors import InvalidInput
from agentmem.lua.scripts import PAGE
from agentmem.plans.plan import MAX_INDEX, Arg, Call, Plan, script_call, single

T = TypeVar("T")

__all__ = ["MAX_PAGE", "Page", "PageSource", "page_plan"]

MAX_PAGE = 10_000
"""The largest ``size`` of a page."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a query: its ``items`` in the query's order and the ``cursor`` of the
    next page (``None``: this is the last page)."""

    items: list[T]
    cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class PageSource:
    """What a page walks: the script's mode (``z`` a sorted index by score, ``s`` a set
    in the order of a sorted index, ``i`` a set by id, ``l`` a list by position), its
    keys, bounds and direction, and how an id becomes a record key (``prefix id
    suffix``; with ``middle``, ``prefix agent middle id suffix``, the agent read from a
    simulation-level id, hashes of other simulations than ``simulation`` skipped: those
    whose hash field ``sim_field``, the layout's name of ``simulation_id``, differs)."""

    mode: str
    key: str
    prefix: str
    suffix: str
    order_key: str = ""
    lo: str = "-inf"
    hi: str = "+inf"
    newest_first: bool = False
    middle: str = ""
    simulation: str = ""
    step: str = ""
    route: str | None = field(default=None)
    sim_field: str = "simulation_id"


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"page size must be an int from 1 to {MAX_PAGE}, got {size!r}")
    return size


def _cursor_args(mode: str, cursor: object) -> tuple[str, str]:
    if cursor is None:
        return "", ""
    if not isinstance(cursor, str) or " " not in cursor:
        raise InvalidInput(f"not a cursor of this query: {cursor!r}")
    score, member = cursor.split(" ", 1)
    if mode == "i":
        if score != "i" or not member:
            raise InvalidInput(f"not a cursor of this query: {cursor!r}")
    elif mode == "l":
        if not score.isdigit() or member or int(score) > MAX_INDEX:
            raise InvalidInput(f"not a cursor of this query: {cursor!r}")
    else:
        try:
            value = float(score)
        except ValueError:
            raise InvalidInput(f"not a cursor of this query: {cursor!r}") from None
        if math.isnan(value) or not member:
            raise InvalidInput(f"not a cursor of this query: {cursor!r}")
    return score, member


def page_call(src: PageSource, cursor: str | None, size: int) -> Call:
    score, member = _cursor_args(src.mode, cursor)
    argv: list[Arg] = [src.mode, src.key, src.order_key, src.lo, src.hi,
                       "1" if src.newest_first else "0", check_size(size), score, member,
                       src.prefix, src.suffix, src.middle, src.simulation, src.step,
                       src.sim_field]
    return script_call(PAGE, argv, route=src.route or src.key)


def page_plan(src: PageSource, cursor: str | None, size: int,
              decode: Callable[[Any], T]) -> Plan[Page[T]]:
    """One page of ``src`` after ``cursor`` (``None``: the first page)."""

    def parse(raw: Any) -> Page[T]:
        hashes, more, score, member = raw
        text = [x.decode() if isinstance(x, bytes) else str(x) for x in (more, score, member)]
        nxt = f"{text[1]} {text[2]}" if text[0] == "1" else None
        return Page([decode(h) for h in hashes], nxt)

    return single(page_call(src, cursor, size), parse)
