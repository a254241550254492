"""Radius search over actions: an agent's (``near``) and a simulation's (``near_at``)."""

from __future__ import annotations

from collections.abc import Sequence

from agentmem.errors import ConfigError, InvalidInput
from agentmem.model.records import Action
from agentmem.plans.keyspace import (
    candidate_agents,
    check_action_type,
)
from agentmem.plans.plan import (
    Plan,
    score_arg,
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
from agentmem.plans.runner import operation
from agentmem.repository.actioncore import ActionCore


class RadiusSearch(ActionCore):
    """Radius search, exact, from the grid indices, in one round trip."""

    def _type_filter(self, action_type: str | Sequence[str] | None) -> Filters:
        if action_type is None:
            return Filters()
        types = (action_type,) if isinstance(action_type, str) else tuple(action_type)
        for t in types:
            check_action_type(t)
        return Filters(match=(self.spec.codec.wire("action_type"), types))

    def _position_fields(self) -> tuple[str, str]:
        """The hash fields of the position, as the layout names them."""
        wire = self.spec.codec.wire
        return wire("position_x"), wire("position_y")

    def _need_grids(self, call: str) -> None:
        if not getattr(self, "grids", True):
            raise ConfigError(f"{call} searches the radius-search grids, which this store "
                              "does not keep (grids=False): open it with grids=True")

    @operation
    def near(self, /, agent_id: str, x: float, y: float, radius: float, *,
             limit: int | None = None, action_type: str | Sequence[str] | None = None,
             start: int | None = None, end: int | None = None) -> Plan[list[Near[Action]]]:
        """The agent's short-term actions whose position is within ``radius`` of
        ``(x, y)``, nearest first (ties by id), as ``(record, distance)`` pairs.

        Optionally only actions of ``action_type`` (one or several) and of steps
        ``start..end`` (inclusive). Exact (the same set as a filter over every
        action), from the grid index, in one round trip; with a ``limit``, the cells
        nearest the point are read first and the search stops once ``limit`` actions
        are nearer than any unread cell.
        """
        self._need_grids("near")
        circle = Circle.of(x, y, radius, self.grid_cell, limited=limit is not None)
        f = self._type_filter(action_type)
        start, end = check_steps(start, end)
        if start is not None or end is not None:
            f = Filters(f.match, (self.spec.codec.wire("step_number"), start, end))
        prefix, suffix = self._agent(agent_id)
        key = self._key("grid", agent_id=agent_id)
        call = near_call(circle, mode="r", shape=(prefix, "", suffix),
                         fields=self._position_fields(), limit=limit, filters=f,
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
        self._need_grids("near_at")
        # one step: one grid, as near's; over steps every range costs a ZRANGE per step
        circle = Circle.of(x, y, radius, self.grid_cell,
                           limited=limit is not None and step is not None)
        f = self._type_filter(action_type)
        start, end = check_steps(start, end)
        if step is not None and (start is not None or end is not None):
            raise InvalidInput("give step, or start and/or end, not both")
        shape = self._sim_shape()
        fields = self._position_fields()
        sim_field = self.spec.codec.wire("simulation_id")
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
                             filters=f, keys=keys, steps=steps, simulation_id=simulation_id,
                             sim_field=sim_field)
            return self._with_cell(single(call, parse_near(self.spec.codec.decode)),
                                   record=False)
        route = self._key("sim_steps", simulation_id=simulation_id)
        first = near_call(circle, mode="c", shape=shape, fields=fields, limit=limit,
                          filters=f, keys=keys, steps=steps, route=route)
        return self._with_cell(near_split(
            circle, candidates=first, shape=shape, fields=fields, limit=limit, filters=f,
            agents_of=candidate_agents, decode=self.spec.codec.decode,
            simulation_id=simulation_id, sim_field=sim_field), record=False)
