"""Radius search: the plans of :meth:`Repository.near`, :meth:`ActionRepository.near`
and :meth:`ActionRepository.near_at` (``docs/search.md``).

The client turns the circle into ranges of grid-cell codes (:mod:`agentmem.plans.grid`);
:data:`~agentmem.lua.radius.NEAR` reads the index members in those ranges, keeps
the records whose stored position is within the radius (and that pass the filters),
and returns them nearest first, in one round trip. On a Redis Cluster a
simulation-level search takes two: the candidates from the simulation's slot, then
their hashes from their agents' slots, filtered here with the script's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from agentmem.errors import BackendError, InvalidInput
from agentmem.lua.radius import NEAR
from agentmem.lua.scripts import GET_MANY
from agentmem.plans.grid import (
    MAX_RANGES,
    check_query,
    merged,
    nearest_cover,
    range_args,
    ranked_cover,
    within,
)
from agentmem.plans.plan import Arg, Call, FollowUp, Plan, check_limit, score_arg, script_call

M = TypeVar("M", bound=BaseModel)


class Near(NamedTuple, Generic[M]):
    """One result of a radius search: the record and its distance from the query point."""

    record: M
    distance: float


LIMITED_RANGES = 48
"""Code ranges of a search with a limit: the nearest cells one by one, then coarser
blocks (:func:`~agentmem.plans.grid.nearest_cover`). Each range costs an argument
triple to build and send, and a ``ZRANGE`` to read even when empty: of budgets from
24 to 384, 48 was the fastest overall from 1,000 to 200,000 actions in 100 x 100 with
cells 0.25 and 1.0 (24 and 32 a little faster when sparse, but 2-5x the hashes read
when dense; more ranges cost more than the hashes they save; docs/performance.md)."""


@dataclass(frozen=True)
class Circle:
    """A checked query: the point, the radius and the code ranges of its cells."""

    x: float
    y: float
    radius: float
    ranges: list[tuple[int, int, float]]
    """Code ranges, nearest first, with a lower bound of their squared distance."""

    @classmethod
    def of(cls, x: object, y: object, radius: object, cell: float, *,
           limited: bool = False) -> Circle:
        """The checked query. ``limited`` (a search of one key with a limit): up to
        :data:`LIMITED_RANGES` ranges, the cells nearest the point first, each a range
        of its own, so that the search stops after about the cells its rows are in
        (:func:`~agentmem.plans.grid.nearest_cover`); otherwise (every range is read)
        up to :data:`~agentmem.plans.grid.MAX_RANGES` ranges that fit the circle's box
        closely (:func:`~agentmem.plans.grid.ranked_cover`). Either way disjoint, so
        that no member is read twice."""
        fx, fy, fr = check_query(x, y, radius)
        if limited:
            return cls(fx, fy, fr, nearest_cover(fx, fy, fr, cell, LIMITED_RANGES))
        return cls(fx, fy, fr, ranked_cover(fx, fy, fr, cell, MAX_RANGES))

    @property
    def r2(self) -> float:
        return self.radius * self.radius


@dataclass(frozen=True)
class Filters:
    """What the script checks besides the distance: a field equal to one of some values,
    and a numeric field within bounds (``None``: open); fields named as the hashes keep
    them (``codec.wire``)."""

    match: tuple[str, tuple[str, ...]] | None = None
    between: tuple[str, float | None, float | None] | None = None

    def argv(self) -> list[Arg]:
        out: list[Arg] = []
        if self.match is None:
            out += ["", 0]
        else:
            out += [self.match[0], len(self.match[1]), *self.match[1]]
        if self.between is None:
            out += ["", "", ""]
        else:
            name, lo, hi = self.between
            out += [name, score_arg(lo, ""), score_arg(hi, "")]
        return out

    def accepts(self, h: dict[bytes, bytes]) -> bool:
        """The script's filters, on a raw hash (the cluster path)."""
        if self.match is not None:
            v = h.get(self.match[0].encode())
            if v is None or v.decode() not in self.match[1]:
                return False
        if self.between is not None:
            name, lo, hi = self.between
            raw = h.get(name.encode())
            try:
                num = float(raw) if raw is not None else None
            except ValueError:
                num = None
            if num is None or (lo is not None and num < lo) or (hi is not None and num > hi):
                return False
        return True


def check_steps(start: int | None, end: int | None) -> tuple[int | None, int | None]:
    for name, v in (("start", start), ("end", end)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidInput(f"{name} must be an int step or None, got {v!r}")
    return start, end


def near_call(circle: Circle, *, mode: str, shape: tuple[str, str, str],
              fields: tuple[str, str], limit: int | None, filters: Filters,
              keys: Sequence[tuple[str, str]] = (),
              steps: tuple[str, str, str, str, str] | None = None,
              route: str | None = None, simulation_id: str = "",
              sim_field: str = "simulation_id") -> Call:
    """One :data:`NEAR` call: ``keys`` as (key, step) pairs, or ``steps`` as (steps key,
    lo, hi, key prefix, key suffix) for the keys of the steps a sorted set holds.
    ``simulation_id`` (mode ``'s'``): a member whose hash is of another simulation (its
    hash field ``sim_field``) is skipped. ``fields``, ``filters`` and ``sim_field`` name
    hash fields as the hashes keep them (``codec.wire``). A call that reads every range
    (no limit, or mode ``'c'``) gets them in code order, adjacent ones merged: the order
    only matters to a limit's early stop."""
    argv: list[Arg] = [mode, *shape, *fields, repr(circle.x), repr(circle.y),
                       repr(circle.r2), check_limit(limit), *filters.argv()]
    if steps is None:
        argv += ["keys", len(keys)]
        for key, step in keys:
            argv += (key, step)
    else:
        argv += ["steps", *steps]
    every = limit is None or mode == "c"
    argv += range_args(merged(circle.ranges) if every else circle.ranges)
    argv += (simulation_id, sim_field)
    return script_call(NEAR, argv, route=route)


def parse_near(decode: Callable[[Any], M]) -> Callable[[Any], list[Near[M]]]:
    """Read the script's ``{d2, hash, ...}`` reply as :class:`Near` results."""
    def parse(raw: Any) -> list[Near[M]]:
        out = []
        for i in range(0, len(raw), 2):
            d2 = float(raw[i])
            out.append(Near(decode(raw[i + 1]), math.sqrt(d2)))
        return out
    return parse


def near_split(circle: Circle, *, candidates: Call, shape: tuple[str, str, str],
               fields: tuple[str, str], limit: int | None, filters: Filters,
               agents_of: Callable[[str, str], list[str]],
               decode: Callable[[Any], M], simulation_id: str = "",
               sim_field: str = "simulation_id") -> Plan[list[Near[M]]]:
    """The cluster path of a simulation-level search: ``candidates`` (a ``'c'``-mode
    call) lists ``id, step`` pairs; one ``GET_MANY`` per agent reads their hashes,
    and the script's test and order are applied here (a hash of another simulation
    than ``simulation_id``, in its hash field ``sim_field``, is skipped, as the script
    does)."""
    pre, mid, suffix = shape
    sim = simulation_id.encode()
    sf = sim_field.encode()
    lim = check_limit(limit)
    fx, fy = (f.encode() for f in fields)

    def fetch(raw: list[Any]) -> list[Near[M]]:
        if isinstance(raw[0], Exception):
            raise raw[0]
        flat = [x.decode() if isinstance(x, bytes) else str(x) for x in raw[0]]
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        per_agent: dict[str, list[str]] = {}
        options = [agents_of(i, step) for i, step in pairs]
        for (i, _), agents in zip(pairs, options, strict=True):
            for a in agents:
                per_agent.setdefault(a, []).append(i)
        agents = list(per_agent)
        calls = [script_call(GET_MANY, [pre + a + mid, suffix, *per_agent[a]]) for a in agents]
        if not calls:
            return []

        def assemble(replies: list[Any]) -> list[Near[M]]:
            found: dict[tuple[str, str], dict[bytes, bytes]] = {}
            for a, reply in zip(agents, replies, strict=True):
                if isinstance(reply, BackendError):
                    raise reply
                for i, h in zip(per_agent[a], reply, strict=True):
                    if h:
                        found[a, i] = dict(zip(h[::2], h[1::2], strict=True))
            rows = []
            for (i, _), cands in zip(pairs, options, strict=True):
                for a in cands:
                    h = found.get((a, i))
                    if h is None or (sim and h.get(sf) != sim):
                        continue
                    try:
                        px, py = float(h[fx]), float(h[fy])
                    except (KeyError, ValueError):
                        break
                    dx, dy = px - circle.x, py - circle.y
                    d2 = dx * dx + dy * dy
                    if within(px, py, circle.x, circle.y, circle.r2) and filters.accepts(h):
                        rows.append((d2, i.encode(), h))
                    break
            rows.sort(key=lambda r: (r[0], r[1]))
            if lim >= 0:
                rows = rows[:lim]
            return [Near(decode([x for kv in h.items() for x in kv]), math.sqrt(d2))
                    for d2, _, h in rows]

        raise FollowUp(Plan(calls, assemble))

    return Plan((candidates,), fetch)
