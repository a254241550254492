"""The action repository's core: options, the grid-cell check, writes and key helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentmem.config import DEFAULT_BATCH_SIZE, RedisSettings, read
from agentmem.errors import InvalidInput
from agentmem.lua.scripts import (
    CLAIM,
    SET_SORTED_FETCH,
    ZRANGE_FETCH,
)
from agentmem.model.records import Action
from agentmem.model.schema import GridIndex
from agentmem.plans.colplan import column_at
from agentmem.plans.keyspace import (
    DEFAULT_ACTION_TTL,
    DEFAULT_GRID_CELL,
    DEFAULT_RELATIVE_INDEX_SIZE,
    GRID_CELL_KEY,
    NO_GRIDS,
    Layout,
    check_recorded_cell,
    grid_cell_text,
    layout,
    sorted_families,
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
from agentmem.plans.runner import operation
from agentmem.plans.write import Prepared
from agentmem.repository.base import RecordOps, build

T = TypeVar("T")

KEY_CACHE = 1 << 16
"""The most keys a repository keeps rendered (:meth:`ActionCore._key`); later ones are
rendered each time."""


def check_options(*, ttl: object, relative_index_size: object, embedding_dim: object,
                  batch_size: object, grid_cell: object = DEFAULT_GRID_CELL,
                  grids: object = True, write_columns: object = None) -> None:
    """Reject malformed repository options with :class:`~agentmem.errors.ConfigError` (through
    :class:`~agentmem.config.RedisSettings`, where they are declared)."""
    read(RedisSettings, {"ttl": ttl, "relative_index_size": relative_index_size,
                         "embedding_dim": embedding_dim, "batch_size": batch_size,
                         "grid_cell": grid_cell, "grids": grids,
                         "write_columns": write_columns}, env={})


class ActionCore(RecordOps[Action]):
    """What every action operation shares: the key layout, options, the grid cell
    check, writes (``add``, ``add_many``, ``record``) and key helpers.

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
        batch_size: int = DEFAULT_BATCH_SIZE,
        grid_cell: float = DEFAULT_GRID_CELL,
        grids: bool = True,
        write_columns: bool | None = None,
    ) -> None:
        self.layout: Layout = layout(layout_version)
        self.sorted_families = sorted_families(layout_version)
        """Layout 4: the types and targets indices are sorted sets scored by step."""
        self.families_kind = "z" if self.sorted_families else "s"
        """The kind of the types and targets keys as the scripts take it ('z' or 's')."""
        check_options(ttl=ttl, relative_index_size=relative_index_size,
                      embedding_dim=embedding_dim, batch_size=batch_size, grid_cell=grid_cell,
                      grids=grids, write_columns=write_columns)
        self.grid_cell = float(grid_cell)
        self.grids = grids
        """Whether this store keeps the radius-search grids (``RedisSettings.grids``)."""
        spec = self.layout.action.replace(
            ttl=ttl, caps={"relative_index": relative_index_size},
            cells={"grid": self.grid_cell, "sim_grid": self.grid_cell})
        if not grids:
            spec = dataclasses.replace(spec, indexes=tuple(
                ix for ix in spec.indexes if not isinstance(ix, GridIndex)))
        self.embedding_dim = embedding_dim
        self._keys: dict[Any, str | tuple[str, str]] = {}
        """Keys rendered and checked already (an agent's key parts by its id, the others
        by family and parts): a decision loop renders the same few per agent and step.
        Shared with the copies of this repository; at most :data:`KEY_CACHE` entries."""
        self._cell = [0]
        """What this store knows of the server's grid cell (``agentmem:grid_cell``):
        0 nothing yet, 1 it matches or none is recorded, 2 it matches and is recorded.
        In a list, shared with the copies of this repository (a batch's, an outbox's)."""
        super().__init__(runner, spec, batch_size=batch_size, write_columns=write_columns)
        names = self.writer.names
        self._check_at = tuple(names.index(n) for n in
                               ("action_id", "agent_id", "step_number", "embedding"))

    @property
    def _cell_state(self) -> int:
        return self._cell[0]

    @_cell_state.setter
    def _cell_state(self, state: int) -> None:
        self._cell[0] = state

    def _cell_plan(self, record: bool, then: Callable[[], T]) -> Plan[T]:
        """The look at the server's grid cell (see :meth:`grid_cell_check`), then ``then()``."""
        text = grid_cell_text(self.grid_cell) if self.grids else NO_GRIDS
        call = script_call(CLAIM, [text], keys=[GRID_CELL_KEY]) \
            if record else command("GET", GRID_CELL_KEY)

        def parse(replies: list[Any]) -> T:
            raw = replies[0]
            if isinstance(raw, Exception):
                raise raw
            check_recorded_cell(raw, self.grid_cell, grids=self.grids)
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

        return dataclasses.replace(self._cell_plan(record, follow), adds=then.adds,
                                   guarded=then.guarded)

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

    def _rows_plan(self, prepared: Sequence[Prepared]) -> Plan[list[str]]:
        plan = super()._rows_plan(prepared)
        x = self.writer.names.index("position_x")
        if self._cell_state == 2 or column_at(prepared, x).count(None) == len(prepared):
            return plan
        return self._with_cell(plan, record=True)

    def check(self, record: Action) -> None:
        emb = record.embedding
        self._check(record.action_id, record.agent_id, record.step_number,
                    None if emb is None else emb.shape[0])

    def check_values(self, vals: list[Any]) -> None:
        """:meth:`check` on encoded values (``add_rows``): the embedding is float32 bytes."""
        aid, agent, step, emb = self._check_at
        if vals[aid] is not None or (vals[emb] is not None and self.embedding_dim is not None):
            self._check(vals[aid], vals[agent], vals[step],
                        None if vals[emb] is None else len(vals[emb]) // 4)

    def rows_ok(self, cols: Sequence[Sequence[Any]]) -> bool:
        """Whether :meth:`check_values` passes every row of ``cols`` unseen: no id given,
        and no embedding or no dimension to check it against."""
        aid, _, _, emb = self._check_at
        return cols[aid].count(None) == len(cols[aid]) and (
            self.embedding_dim is None or cols[emb].count(None) == len(cols[emb]))

    def _check(self, given: str | None, agent_id: str, step: int, dims: int | None) -> None:
        if given is not None:
            head = f"{agent_id}-{step}-"
            rest = given[len(head):]
            if not given.startswith(head) or not rest or "-" in rest:
                raise InvalidInput(
                    f"action id {given!r} must read {head}<type or name without '-'>, so "
                    "that simulation-level indices can find its agent"
                )
        dim = self.embedding_dim
        if dim is not None and dims is not None and dims != dim:
            raise InvalidInput(f"embedding has {dims} dimensions; this repository stores {dim}")

    @operation
    def record(self, /, **fields: Any) -> Plan[Action]:
        """Build an :class:`Action` from keyword fields and store it (``store_agent_action``)."""
        return self._write_plan([build(Action, **fields)]).map(lambda out: out[0])

    # -- per-agent queries ---------------------------------------------------

    def _agent(self, agent_id: str) -> tuple[str, str]:
        cache = self._keys
        if type(agent_id) is not str:
            return self.layout.record_key_parts("action", agent_id=agent_id)
        found = cache.get(agent_id)
        if found is None:
            found = self.layout.record_key_parts("action", agent_id=agent_id)
            if len(cache) < KEY_CACHE:
                cache[agent_id] = found
        return found  # type: ignore[return-value]

    def _key(self, family: str, **parts: str | int) -> str:
        if not all(type(v) is str or type(v) is int for v in parts.values()):
            return self.layout.key(family, **parts)  # it raises the clear error
        cache = self._keys
        name = (family, *parts.items())
        found = cache.get(name)
        if found is None:
            found = self.layout.key(family, **parts)
            if len(cache) < KEY_CACHE:
                cache[name] = found
        return found  # type: ignore[return-value]

    def _sorted_members(self, skey: str, zkey: str, agent_id: str, *, limit: int | None,
                        min_score: float | None = None, exclusive: bool = False,
                        skind: str = "") -> Plan[list[Action]]:
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [skey, zkey, prefix, suffix, "1", check_limit(limit),
                           "" if min_score is None else score_arg(min_score, ""),
                           "1" if exclusive else "0", skind]
        return single(script_call(SET_SORTED_FETCH, argv), self._decode_list)

    def _zrange(self, zkey: str, agent_id: str, by: str, lo: str, hi: str, *,
                newest_first: bool, limit: int | None) -> Plan[list[Action]]:
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [zkey, prefix, suffix, by, lo, hi, "1" if newest_first else "0",
                           check_limit(limit)]
        return single(script_call(ZRANGE_FETCH, argv), self._decode_list)

    def _sim_shape(self) -> tuple[str, str, str]:
        """The action key around its two ids: (prefix, middle, suffix)."""
        t = self.layout.template("action")
        marker = {"agent_id": "\x01", "action_id": "\x02"}
        shape = "".join(v if k == "L" else marker.get(v, "") for k, v in t.parts)
        prefix, rest = shape.split("\x01", 1)
        middle, suffix = rest.split("\x02", 1)
        return prefix, middle, suffix

