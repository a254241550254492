"""The action repository: every query of the specification, each one round trip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentmem.config import RedisSettings, read
from agentmem.errors import DecodeError, InvalidInput
from agentmem.lua.scripts import (
    CLAIM,
    GET_MANY,
    RELATIVE_FETCH,
    SET_SORTED_FETCH,
    SIM_FETCH,
    ZRANGE_FETCH,
)
from agentmem.lua.tiers import HISTORY
from agentmem.model.analytics import Lesson, SequenceAnalysis, analyze_sequence, learn
from agentmem.model.records import Action, IMAction
from agentmem.plans.keyspace import (
    DEFAULT_ACTION_TTL,
    DEFAULT_GRID_CELL,
    DEFAULT_RELATIVE_INDEX_SIZE,
    GRID_CELL_KEY,
    Layout,
    check_action_type,
    check_recorded_cell,
    grid_cell_text,
    layout,
)
from agentmem.plans.plan import (
    Arg,
    FollowUp,
    Plan,
    check_limit,
    command,
    score_arg,
    script_call,
    single,
)
from agentmem.plans.radius import (
    Circle,
    Filters,
    Near,
    check_steps,
    near_call,
    near_split,
    parse_near,
)
from agentmem.plans.runner import Asynchronous, Blocking, operation
from agentmem.repository.base import RecordOps, build

T = TypeVar("T")


def check_options(*, ttl: object, relative_index_size: object, embedding_dim: object,
                  batch_size: object, grid_cell: object = DEFAULT_GRID_CELL) -> None:
    """Reject malformed repository options with :class:`~agentmem.errors.ConfigError` (through
    :class:`~agentmem.config.RedisSettings`, where they are declared)."""
    read(RedisSettings, {"ttl": ttl, "relative_index_size": relative_index_size,
                         "embedding_dim": embedding_dim, "batch_size": batch_size,
                         "grid_cell": grid_cell}, env={})


class ActionOps(RecordOps[Action]):
    """Action queries; use :class:`ActionRepository` or :class:`AsyncActionRepository`.

    ``ttl`` is the action hash's TTL in seconds (``None``: never expires; default one
    day), ``relative_index_size`` how many ids the relative index keeps (default 20),
    ``embedding_dim`` the length every stored embedding must have, ``grid_cell`` the
    side of a cell of the radius-search grid (every client of the data must use the
    same; see ``docs/search.md``).
    """

    def __init__(
        self,
        runner: Any,
        *,
        layout_version: int = 1,
        ttl: int | None = DEFAULT_ACTION_TTL,
        relative_index_size: int = DEFAULT_RELATIVE_INDEX_SIZE,
        embedding_dim: int | None = None,
        batch_size: int = 500,
        grid_cell: float = DEFAULT_GRID_CELL,
    ) -> None:
        self.layout: Layout = layout(layout_version)
        check_options(ttl=ttl, relative_index_size=relative_index_size,
                      embedding_dim=embedding_dim, batch_size=batch_size, grid_cell=grid_cell)
        self.grid_cell = float(grid_cell)
        spec = self.layout.action.replace(
            ttl=ttl, caps={"relative_index": relative_index_size},
            cells={"grid": self.grid_cell, "sim_grid": self.grid_cell})
        self.embedding_dim = embedding_dim
        self._cell_state = 0
        """What this store knows of the server's grid cell (``agentmem:grid_cell``):
        0 nothing yet, 1 it matches or none is recorded, 2 it matches and is recorded."""
        super().__init__(runner, spec, batch_size=batch_size)

    def _cell_plan(self, record: bool, then: Callable[[], T]) -> Plan[T]:
        """The look at the server's grid cell (see :meth:`grid_cell_check`), then ``then()``."""
        call = script_call(CLAIM, [grid_cell_text(self.grid_cell)], keys=[GRID_CELL_KEY]) \
            if record else command("GET", GRID_CELL_KEY)

        def parse(replies: list[Any]) -> T:
            raw = replies[0]
            if isinstance(raw, Exception):
                raise raw
            check_recorded_cell(raw, self.grid_cell)
            self._cell_state = 2 if record or raw is not None else 1
            return then()

        return Plan((call,), parse)

    def _with_cell(self, then: Plan[T], *, record: bool) -> Plan[T]:
        """``then``, preceded on a store's first use of the grids by a look at the grid
        cell the server records: a write of positions records ours if none is
        (:data:`~agentmem.lua.scripts.CLAIM`), a search only reads it; another cell raises
        :class:`~agentmem.errors.LayoutError` before ``then`` runs. Later calls skip it."""
        if self._cell_state == 2 or (self._cell_state == 1 and not record):
            return then

        def follow() -> T:
            raise FollowUp(then)

        return self._cell_plan(record, follow)

    @operation
    def grid_cell_check(self, /, *, record: bool = False) -> Plan[float]:
        """This store's ``grid_cell``, checked against the one the server records in
        ``agentmem:grid_cell`` (:class:`~agentmem.errors.LayoutError` if they differ);
        with ``record``, recorded when the server has none. One round trip. Writes of
        positions and searches do this on a store's first use of the grids;
        ``integrity.check``/``repair`` call it."""
        return self._cell_plan(record, lambda: self.grid_cell)

    def _write_plan(self, records: Sequence[Action]) -> Plan[list[Action]]:
        plan = super()._write_plan(records)  # validated and encoded first
        if self._cell_state == 2 or all(r.position is None for r in records):
            return plan
        return self._with_cell(plan, record=True)

    def check(self, record: Action) -> None:
        given = record.action_id
        if given is not None:
            head = f"{record.agent_id}-{record.step_number}-"
            rest = given[len(head):]
            if not given.startswith(head) or not rest or "-" in rest:
                raise InvalidInput(
                    f"action id {given!r} must read {head}<type or name without '-'>, so "
                    "that simulation-level indices can find its agent"
                )
        dim = self.embedding_dim
        if dim is not None and record.embedding is not None and record.embedding.shape[0] != dim:
            raise InvalidInput(
                f"embedding has {record.embedding.shape[0]} dimensions; this repository "
                f"stores {dim}"
            )

    @operation
    def record(self, /, **fields: Any) -> Plan[Action]:
        """Build an :class:`Action` from keyword fields and store it (``store_agent_action``)."""
        return self._write_plan([build(Action, **fields)]).map(lambda out: out[0])

    # -- per-agent queries ---------------------------------------------------

    def _agent(self, agent_id: str) -> tuple[str, str]:
        return self.layout.record_key_parts("action", agent_id=agent_id)

    def _key(self, family: str, **parts: str | int) -> str:
        return self.layout.key(family, **parts)

    def _sorted_members(self, skey: str, zkey: str, agent_id: str, *, limit: int | None,
                        min_score: float | None = None, exclusive: bool = False
                        ) -> Plan[list[Action]]:
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [skey, zkey, prefix, suffix, "1", check_limit(limit),
                           "" if min_score is None else score_arg(min_score, ""),
                           "1" if exclusive else "0"]
        return single(script_call(SET_SORTED_FETCH, argv), self._decode_list)

    def _zrange(self, zkey: str, agent_id: str, by: str, lo: str, hi: str, *,
                newest_first: bool, limit: int | None) -> Plan[list[Action]]:
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [zkey, prefix, suffix, by, lo, hi, "1" if newest_first else "0",
                           check_limit(limit)]
        return single(script_call(ZRANGE_FETCH, argv), self._decode_list)

    @operation
    def by_type(self, /, agent_id: str, action_type: str, limit: int | None = None
                ) -> Plan[list[Action]]:
        """The agent's actions of one type, newest first (by step, then id)."""
        return self._sorted_members(
            self._key("types", agent_id=agent_id, action_type=action_type),
            self._key("timeline", agent_id=agent_id), agent_id, limit=limit)

    @operation
    def by_target(self, /, agent_id: str, target_id: str, limit: int | None = None
                  ) -> Plan[list[Action]]:
        """The agent's actions aimed at ``target_id``, newest first."""
        return self._sorted_members(
            self._key("targets", agent_id=agent_id, action_target_id=target_id),
            self._key("timeline", agent_id=agent_id), agent_id, limit=limit)

    @operation
    def high_reward(self, /, agent_id: str, min_reward: float = 0.5, limit: int | None = 10
                    ) -> Plan[list[Action]]:
        """Actions with ``reward >= min_reward``, highest reward first.

        The specification's code returns the *lowest* rewards above the threshold
        first; agentmem returns the highest, which is what "high reward" asks for.
        """
        return self._zrange(self._key("rewards", agent_id=agent_id), agent_id, "score",
                            score_arg(min_reward, "-inf"), "+inf", newest_first=True,
                            limit=limit)

    @operation
    def successful_interactions(self, /, agent_id: str, target_id: str, limit: int | None = 3
                                ) -> Plan[list[Action]]:
        """Actions aimed at ``target_id`` with ``reward > 0``, highest reward first."""
        return self._sorted_members(
            self._key("targets", agent_id=agent_id, action_target_id=target_id),
            self._key("rewards", agent_id=agent_id), agent_id, limit=limit, min_score=0.0,
            exclusive=True)

    @operation
    def timeline(self, /, agent_id: str, start: int | None = None, end: int | None = None, *,
                 newest_first: bool = False, limit: int | None = None) -> Plan[list[Action]]:
        """Actions with ``start <= step_number <= end`` (either bound open), oldest first."""
        return self._zrange(self._key("timeline", agent_id=agent_id), agent_id, "score",
                            score_arg(start, "-inf"), score_arg(end, "+inf"),
                            newest_first=newest_first, limit=limit)

    @operation
    def recent(self, /, agent_id: str, n: int = 10) -> Plan[list[Action]]:
        """The ``n`` most recent actions, newest first (expired ones skipped)."""
        n = check_limit(n)
        if n == 0:
            return Plan((), lambda raw: [])
        return self._zrange(self._key("timeline", agent_id=agent_id), agent_id, "rank", "0",
                            str(n - 1), newest_first=True, limit=n)

    @operation
    def relative(self, /, agent_id: str, position: int = 0) -> Plan[Action | None]:
        """The action at a relative position: 0 is the newest, -1 the one before, …

        Positions within the relative index (20 by default) read it; older ones
        read the timeline. The specification's formula maps -1 to the *oldest*
        entry; here -k is the k-th before the newest.
        """
        if isinstance(position, bool) or not isinstance(position, int) or position > 0:
            raise InvalidInput(f"relative position must be an int <= 0, got {position!r}")
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [self._key("relative_index", agent_id=agent_id),
                           self._key("timeline", agent_id=agent_id), prefix, suffix, -position]
        decode = self.spec.codec.decode
        return single(script_call(RELATIVE_FETCH, argv),
                      lambda raw: decode(raw[0]) if raw else None)

    @operation
    def history(self, /, agent_id: str, start: int | None = None, end: int | None = None, *,
                newest_first: bool = False, limit: int | None = None
                ) -> Plan[list[Action | IMAction]]:
        """The agent's actions in short-term **and** intermediate memory with
        ``start <= step_number <= end``, as one sequence ordered by step then id, in
        one round trip: STM entries are :class:`Action`, IM entries :class:`IMAction`
        (see ``docs/tiers.md``)."""
        prefix, suffix = self._agent(agent_id)
        iprefix, isuffix = self.layout.record_key_parts("im_action", agent_id=agent_id)
        argv: list[Arg] = [self._key("timeline", agent_id=agent_id), prefix, suffix,
                           self._key("im_timeline", agent_id=agent_id), iprefix, isuffix,
                           score_arg(start, "-inf"), score_arg(end, "+inf"),
                           "1" if newest_first else "0", check_limit(limit)]
        stm_decode = self.spec.codec.decode
        im_decode = self.layout.im_action.codec.decode

        def parse(raw: Any) -> list[Action | IMAction]:
            return [stm_decode(raw[i + 1]) if raw[i] in (b"s", "s") else im_decode(raw[i + 1])
                    for i in range(0, len(raw), 2)]

        return single(script_call(HISTORY, argv), parse)

    # -- radius search ---------------------------------------------------------

    def _type_filter(self, action_type: str | Sequence[str] | None) -> Filters:
        if action_type is None:
            return Filters()
        types = (action_type,) if isinstance(action_type, str) else tuple(action_type)
        for t in types:
            check_action_type(t)
        return Filters(match=("action_type", types))

    @operation
    def near(self, /, agent_id: str, x: float, y: float, radius: float, *,
             limit: int | None = None, action_type: str | Sequence[str] | None = None,
             start: int | None = None, end: int | None = None) -> Plan[list[Near[Action]]]:
        """The agent's short-term actions whose position is within ``radius`` of
        ``(x, y)``, nearest first (ties by id), as ``(record, distance)`` pairs.

        Optionally only actions of ``action_type`` (one or several) and of steps
        ``start..end`` (inclusive). Exact (the same set as a filter over every
        action), from the grid index, in one round trip.
        """
        circle = Circle.of(x, y, radius, self.grid_cell)
        f = self._type_filter(action_type)
        start, end = check_steps(start, end)
        if start is not None or end is not None:
            f = Filters(f.match, ("step_number", start, end))
        prefix, suffix = self._agent(agent_id)
        key = self._key("grid", agent_id=agent_id)
        call = near_call(circle, mode="r", shape=(prefix, "", suffix),
                         fields=("position_x", "position_y"), limit=limit, filters=f,
                         keys=[(key, "")], route=key)
        return self._with_cell(single(call, parse_near(self.spec.codec.decode)), record=False)

    @operation
    def near_at(self, /, simulation_id: str, x: float, y: float, radius: float, *,
                step: int | None = None, start: int | None = None, end: int | None = None,
                limit: int | None = None, action_type: str | Sequence[str] | None = None
                ) -> Plan[list[Near[Action]]]:
        """A simulation's short-term actions within ``radius`` of ``(x, y)`` at one
        ``step``, or over steps ``start..end`` (inclusive; both open: every step),
        nearest first (ties by id); optionally only of ``action_type``. One round
        trip (two on a Redis Cluster)."""
        circle = Circle.of(x, y, radius, self.grid_cell)
        f = self._type_filter(action_type)
        start, end = check_steps(start, end)
        if step is not None and (start is not None or end is not None):
            raise InvalidInput("give step, or start and/or end, not both")
        shape = self._sim_shape()
        fields = ("position_x", "position_y")
        keys: list[tuple[str, str]] = []
        steps = None
        if step is not None:
            keys = [(self._key("sim_grid", simulation_id=simulation_id, step_number=step),
                     str(step))]
        else:
            kpre, ksuf = self.layout.template("sim_grid").around(
                "step_number", {"simulation_id": simulation_id})
            steps = (self._key("sim_steps", simulation_id=simulation_id),
                     score_arg(start, "-inf"), score_arg(end, "+inf"), kpre, ksuf)
        if not self.cluster:
            call = near_call(circle, mode="s", shape=shape, fields=fields, limit=limit,
                             filters=f, keys=keys, steps=steps)
            return self._with_cell(single(call, parse_near(self.spec.codec.decode)),
                                   record=False)
        route = self._key("sim_steps", simulation_id=simulation_id)
        first = near_call(circle, mode="c", shape=shape, fields=fields, limit=limit,
                          filters=f, keys=keys, steps=steps, route=route)
        return self._with_cell(near_split(
            circle, candidates=first, shape=shape, fields=fields, limit=limit, filters=f,
            agents_of=_sim_agents, decode=self.spec.codec.decode), record=False)

    # -- simulation-level queries --------------------------------------------

    def _sim_shape(self) -> tuple[str, str, str]:
        """The action key around its two ids: (prefix, middle, suffix)."""
        t = self.layout.template("action")
        marker = {"agent_id": "\x01", "action_id": "\x02"}
        shape = "".join(v if k == "L" else marker.get(v, "") for k, v in t.parts)
        prefix, rest = shape.split("\x01", 1)
        middle, suffix = rest.split("\x02", 1)
        return prefix, middle, suffix

    def _sim_fetch(self, source: str, kind: str, start: int, stop: int, limit: int | None,
                   step: int | None = None) -> Plan[list[Action]]:
        # agent:{agent_id}:action:{action_id} -> prefix, middle, suffix around both ids
        prefix, middle, suffix = self._sim_shape()
        argv: list[Arg] = [source, kind, start, stop, prefix, middle, suffix, check_limit(limit),
                           "" if step is None else step]
        if self.cluster:
            return self._sim_fetch_split(source, kind, start, stop, check_limit(limit), step,
                                         (prefix, middle, suffix))
        return single(script_call(SIM_FETCH, argv), self._decode_list)

    def _sim_fetch_split(self, source: str, kind: str, start: int, stop: int, limit: int,
                         step: int | None, shape: tuple[str, str, str]) -> Plan[list[Action]]:
        """Cluster mode: :data:`~agentmem.lua.scripts.SIM_FETCH` in two round trips, as the
        hashes of a simulation's actions are in their agents' slots: the ids from the
        simulation's slot, then one ``GET_MANY`` per agent (grouped per node by the
        runner). The same ids, order, agent resolution and limit as the script."""
        prefix, middle, suffix = shape
        first = command("SMEMBERS", source) if kind == "set" else \
            command("LRANGE", source, start, stop)
        want = "" if step is None else str(step)

        def fetch(raw: list[Any]) -> list[Action]:
            if isinstance(raw[0], Exception):
                raise raw[0]
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in raw[0]]
            if kind == "set":
                ids.sort(key=lambda i: i.encode())
            options = [_sim_agents(i, want) for i in ids]
            per_agent: dict[str, list[str]] = {}
            for i, agents in zip(ids, options, strict=True):
                for a in agents:
                    per_agent.setdefault(a, []).append(i)
            agents = list(per_agent)
            calls = [script_call(GET_MANY, [prefix + a + middle, suffix, *per_agent[a]])
                     for a in agents]
            if not calls:
                return []

            def assemble(replies: list[Any]) -> list[Action]:
                found: dict[tuple[str, str], Any] = {}
                for a, reply in zip(agents, replies, strict=True):
                    if isinstance(reply, Exception):
                        raise reply
                    for i, h in zip(per_agent[a], reply, strict=True):
                        if h:
                            found[a, i] = h
                decode = self.spec.codec.decode
                out: list[Action] = []
                for i, cands in zip(ids, options, strict=True):
                    if 0 <= limit <= len(out):
                        break
                    for a in cands:
                        h = found.get((a, i))
                        if h is not None:
                            out.append(decode(h))
                            break
                return out

            raise FollowUp(Plan(calls, assemble))

        return Plan((first,), fetch)

    @operation
    def at_step(self, /, simulation_id: str, step: int, limit: int | None = None
                ) -> Plan[list[Action]]:
        """Every action of a simulation at one step, ordered by action id."""
        key = self._key("sim_step", simulation_id=simulation_id, step_number=step)
        return self._sim_fetch(key, "set", 0, -1, limit, step)

    @operation
    def simulation_actions(self, /, simulation_id: str, start: int = 0, stop: int = -1
                           ) -> Plan[list[Action]]:
        """A slice of a simulation's actions in write order (LRANGE semantics)."""
        key = self._key("sim_actions", simulation_id=simulation_id)
        return self._sim_fetch(key, "list", start, stop, None)

    @operation
    def steps(self, /, simulation_id: str, start: int | None = None, end: int | None = None
              ) -> Plan[list[int]]:
        """Steps of a simulation that have actions, ascending."""
        key = self._key("sim_steps", simulation_id=simulation_id)
        call = command("ZRANGE", key, score_arg(start, "-inf"), score_arg(end, "+inf"),
                       "BYSCORE")
        return single(call, lambda raw: [int(m) for m in raw])

    @operation
    def type_counts(self, /, simulation_id: str) -> Plan[dict[str, int]]:
        """Number of actions per type in a simulation."""
        key = self._key("sim_by_type", simulation_id=simulation_id)

        def parse(raw: Any) -> dict[str, int]:
            items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
            try:
                return {k.decode(): int(v) for k, v in items}
            except ValueError as exc:
                raise DecodeError(f"{key} holds a count that is not an integer: {exc}") from None

        return single(command("HGETALL", key), parse)

    # -- analytics (section 8) -----------------------------------------------

    @operation
    def learn_from_past_actions(self, /, agent_id: str, action_type: str,
                                position: tuple[float, float] | None = None, limit: int = 5,
                                radius: float = 0.2) -> Plan[Lesson | None]:
        """Section 8.1: average reward and best action among the newest ``limit`` of a type."""
        check_action_type(action_type)
        return ActionOps.by_type.build(self, agent_id, action_type, limit).map(
            lambda past: learn(past, position, radius))

    @operation
    def analyze_action_sequence(self, /, agent_id: str, length: int = 5
                                ) -> Plan[SequenceAnalysis | None]:
        """Section 8.3 over the ``length`` most recent actions, in one round trip."""
        return ActionOps.recent.build(self, agent_id, length).map(analyze_sequence)

    @operation
    def find_successful_interactions_with(self, /, agent_id: str, target_id: str, limit: int = 3
                                          ) -> Plan[list[Action]]:
        """Section 8.2 (same as :meth:`successful_interactions`)."""
        return ActionOps.successful_interactions.build(self, agent_id, target_id, limit)


def _sim_agents(action_id: str, step: str) -> list[str]:
    """The agents an id of a simulation-level index may belong to, as SIM_FETCH tries
    them: what precedes ``-<digits>-`` (matching ``step`` when given), nearest the end first."""
    dashes = [n for n, c in enumerate(action_id) if c == "-"]
    out = []
    for k in range(len(dashes) - 2, -1, -1):
        part = action_id[dashes[k] + 1:dashes[k + 1]]
        if part.isdigit() and part.isascii() and (not step or part == step) and dashes[k] > 0:
            out.append(action_id[:dashes[k]])
    return out


class ActionRepository(ActionOps, Blocking):
    """Blocking action repository."""


class AsyncActionRepository(ActionOps, Asynchronous):
    """asyncio action repository (every method is awaited)."""
