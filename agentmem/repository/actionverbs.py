"""The ORM verbs on actions: ``get``/``exists``/``delete`` by action id alone, ``delete``
in every tier, ``update`` with the grid-cell check, and ``page`` of every listing query."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentmem.errors import InvalidId, InvalidInput, Unsupported
from agentmem.lua.scripts import DELETE, GET_MANY
from agentmem.lua.tiers import TO_IM_SIM
from agentmem.model.records import Action
from agentmem.model.schema import Template
from agentmem.plans.change import section, unindex_body
from agentmem.plans.grid import code
from agentmem.plans.keyspace import candidate_agents, check_action_id, key_pieces
from agentmem.plans.paging import PageSource
from agentmem.plans.plan import Arg, Call, FollowUp, Plan, command, score_arg, script_call, single
from agentmem.plans.runner import operation
from agentmem.plans.writeargs import _tag_field
from agentmem.repository.actioncore import ActionCore
from agentmem.repository.base import RecordOps
from agentmem.repository.verbs import parse_deleted


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sim_of(h: Any, field: bytes) -> bytes | None:
    """The simulation id of a hash as ``HGETALL`` answers it (a dict or a flat list),
    kept under hash field ``field`` (the layout's name of ``simulation_id``)."""
    if isinstance(h, dict):
        value = h.get(field)
        return value if isinstance(value, bytes) else None
    for i in range(0, len(h) - 1, 2):
        if h[i] == field:
            return h[i + 1]  # type: ignore[no-any-return]
    return None


class ActionVerbs(ActionCore):
    """``get``, ``exists`` and ``delete`` with or without the agent id, ``delete`` across
    the tiers, ``update`` and ``page`` over the action layout."""

    def _agents_of(self, action_id: str) -> list[str]:
        """The agents ``action_id`` may belong to (``{agent_id}-{step}-{type}[.n]``; an
        agent id may contain ``-``), nearest the end first, as the simulation-level reads
        try them; candidates that are not valid agent ids are left out."""
        check_action_id(action_id)
        out = []
        for agent in candidate_agents(action_id):
            try:
                self._agent(agent)
            except InvalidId:
                continue
            out.append(agent)
        return out

    @staticmethod
    def _split_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
        extra = set(scope) - {"agent_id", "simulation_id"}
        if extra:
            raise InvalidInput(f"unknown scope {sorted(extra)}: actions take agent_id and "
                               "simulation_id")
        agent, sim = scope.get("agent_id"), scope.get("simulation_id")
        return (None if agent is None else str(agent)), (None if sim is None else str(sim))

    @operation
    def get(self, /, id: str | int, **scope: str | int) -> Plan[Action | None]:
        """The action with id ``id``, or None. Without ``agent_id`` the agent is read from
        the id (``{agent_id}-{step}-{type}[.n]``: every agent an id may name is tried,
        nearest the end first, in one round trip); with ``simulation_id`` an action of
        another simulation is not returned."""
        agent, sim = self._split_scope(scope)
        want = None if sim is None else sim.encode()
        agents = [agent] if agent is not None else self._agents_of(str(id))
        if agent is not None:
            self._key_of(id, {"agent_id": agent})  # id rules
        decode = self.spec.codec.decode
        sim_field = self.spec.codec.wire("simulation_id").encode()
        calls: list[Call] = []
        for a in agents:
            prefix, suffix = self._agent(a)
            calls.append(script_call(GET_MANY, [prefix, suffix, str(id)], route=prefix + suffix))

        def parse(raw: list[Any]) -> Action | None:
            for reply in raw:
                if isinstance(reply, Exception):
                    raise reply
                h = reply[0]
                if h and (want is None or _sim_of(h, sim_field) == want):
                    return decode(h)
            return None

        return Plan(tuple(calls), parse)

    @operation
    def exists(self, /, id: str | int, **scope: str | int) -> Plan[bool]:
        """Whether the action is in short-term memory (its hash exists), as :meth:`get`
        finds it; the agent is read from the id when not given. One round trip."""
        agent, sim = self._split_scope(scope)
        if sim is not None:
            return ActionVerbs.get.build(self, id, **scope).map(lambda a: a is not None)
        agents = [agent] if agent is not None else self._agents_of(str(id))
        keys = [self._key_of(id, {"agent_id": a})[0] for a in agents]

        def parse(raw: list[Any]) -> bool:
            for reply in raw:
                if isinstance(reply, Exception):
                    raise reply
            return any(int(r) > 0 for r in raw)

        return Plan(tuple(command("EXISTS", k) for k in keys), parse)

    def _tier_keys(self, agent: str, rid: str) -> tuple[str, str]:
        stm = self._key_of(rid, {"agent_id": agent})[0]
        prefix, suffix = self.layout.record_key_parts("im_action", agent_id=agent)
        return stm, prefix + rid + suffix

    def _bodies(self) -> tuple[list[Arg], list[Arg]]:
        """The unindex bodies of an action (on a cluster: its indices in the agent's slot
        only; the simulation's part is a call of its own) and of its IM entry."""
        bodies: tuple[list[Arg], list[Arg]] | None = self.__dict__.get("_tier_bodies")
        if bodies is None:
            spec = self.spec
            if self.cluster:
                own = _tag_field(Template.parse(spec.key.pattern))
                spec = dataclasses.replace(spec, indexes=tuple(
                    ix for ix in spec.indexes if _tag_field(Template.parse(ix.key)) == own))
            bodies = self.__dict__["_tier_bodies"] = (unindex_body(spec),
                                                      unindex_body(self.layout.im_action))
        return bodies

    _remote_follows = True  # update: the step's grid follows in the simulation's slot

    def _unindex(self) -> list[Arg]:
        return self._bodies()[0]

    def _one_slot(self, verb: str) -> None:
        """Actions on a cluster: ``update`` and ``delete`` run the agent's slot and then
        the simulation's, as a transition does."""

    def _delete_in(self, agent: str, rid: str) -> Plan[bool]:
        stm, im = self._tier_keys(agent, rid)
        bodies = self._bodies()
        pinned = self._key("pinned", agent_id=agent)
        argv: list[Arg] = [2, *section(bodies[0], stm, rid),
                           *section(bodies[1], im, rid, [pinned])]
        delete = single(script_call(DELETE, argv, route=stm), parse_deleted)
        if not self.cluster:
            return delete
        # a cluster: the agent's slot (hashes, agent indices, pin, retired mark) in one
        # script, then the simulation's (list, step set, step grid, counter) in another,
        # as a transition does (docs/cluster.md: a crash between them leaves entries
        # that check reports and repair removes)

        def read(raw: list[Any]) -> bool:
            sim, step, kind = (None if v is None else _text(v) for v in raw)

            def deleted(done: bool) -> bool:
                if not done or sim is None or step is None or kind is None:
                    return done  # in IM only: it has no simulation-level entries
                raise FollowUp(self._delete_sim_part(sim, rid, step, kind))

            raise FollowUp(Plan(delete.calls, lambda r: deleted(delete.parse(r))))

        wire = self.spec.codec.wire
        return single(command("HMGET", stm, wire("simulation_id"), wire("step_number"),
                              wire("action_type")), read)

    def _delete_sim_part(self, sim: str, rid: str, step: str, kind: str) -> Plan[bool]:
        """The simulation-slot part of an action's delete on a cluster (TO_IM_SIM)."""
        t = self.layout.template
        shapes = [piece for family, fields in (
            ("sim_actions", ["simulation_id"]), ("sim_step", ["simulation_id", "step_number"]),
            ("sim_steps", ["simulation_id"]), ("sim_by_type", ["simulation_id"]),
            ("sim_grid", ["simulation_id", "step_number"])) for piece in key_pieces(
                t(family), {}, fields)]

        def parse(raw: Any) -> bool:
            if raw:
                raise InvalidInput(f"a simulation-level key of {sim!r} holds another type "
                                   f"than its index needs: {rid!r} is deleted from its agent's "
                                   "keys only (agentmem repair removes the rest)")
            return True

        return single(script_call(TO_IM_SIM, [*shapes, sim, rid, step, kind],
                                  route=self.layout.key("sim_actions", simulation_id=sim)),
                      parse)

    @operation
    def delete(self, /, id: str | int, **scope: str | int) -> Plan[bool]:
        """Delete the action from every tier (its short-term hash, its intermediate-memory
        hash, every index entry of both, its pin) atomically, in one script call; its
        agent's retired mark is raised to its step, so its id is not given again (docs/
        keyspace.md). Without ``agent_id`` the agent is read from the id first (one more
        round trip); with ``simulation_id`` an action of another simulation is not
        deleted (one more round trip). True when something was deleted. ``Store.delete(...,
        archive=True)`` also deletes it from the SQL archive."""
        agent, sim = self._split_scope(scope)
        rid = str(id)
        check_action_id(rid)
        if agent is not None and sim is None:
            return self._delete_in(agent, rid)
        # find the agent (and check the simulation) first: what names another
        # simulation's action is not deleted, as get does not return it
        agents = [agent] if agent is not None else self._agents_of(rid)
        fields = (self.spec.codec.wire("simulation_id"),
                  self.layout.im_action.codec.wire("simulation_id"))
        calls = [command("HGET", k, f)
                 for a in agents for k, f in zip(self._tier_keys(a, rid), fields, strict=True)]

        def parse(raw: list[Any]) -> bool:
            for n, a in enumerate(agents):
                for reply in raw[2 * n:2 * n + 2]:
                    if isinstance(reply, Exception):
                        raise reply
                    if reply is not None and (sim is None or reply == sim.encode()):
                        raise FollowUp(self._delete_in(a, rid))
            return False

        return Plan(tuple(calls), parse)

    @operation
    def update(self, /, record: Action) -> Plan[Action]:
        """:meth:`~agentmem.repository.verbs.RecordVerbs.update` of a short-term action
        (an action in intermediate memory raises :class:`~agentmem.errors.NotFound`); the
        agent, simulation, step, type and id cannot change. On a cluster the agent's slot
        is updated first, then the step's grid in the simulation's slot."""
        plan = self._update_plan(record)
        if self.cluster and self.grids:
            plan = self._then_sim_grid(plan, record)
        if record.position is None:
            return plan
        return self._with_cell(plan, record=True)

    def _then_sim_grid(self, plan: Plan[Action], record: Action) -> Plan[Action]:
        """On a cluster, after the agent's slot: the one simulation-level entry an update
        can change, the action's place in its step's grid (the others hang on the id, the
        step and the type, which cannot change)."""
        key = self.layout.key("sim_grid", simulation_id=record.simulation_id,
                              step_number=record.step_number)
        rid = str(record.action_id)
        pos = record.position
        call = command("ZREM", key, rid) if pos is None else \
            command("ZADD", key, code(pos[0], pos[1], self.grid_cell), rid)

        def parse(raw: list[Any]) -> Action:
            updated = plan.parse(raw)
            raise FollowUp(single(call, lambda _: updated))

        return Plan(plan.calls, parse)

    # -- pages -----------------------------------------------------------------------

    def _page_source(self, query: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> tuple[PageSource, Any]:
        make = _SOURCES.get(query)
        if make is None:
            if query in ("range", "members"):
                return RecordOps._page_source(self, query, args, kwargs)
            raise InvalidInput(f"page: unknown query {query!r} ({', '.join(_NAMES)})")
        return make(self, *args, **kwargs), self.spec.codec.decode

    def _z(self, family: str, agent_id: str, lo: str = "-inf", hi: str = "+inf", *,
           newest_first: bool) -> PageSource:
        prefix, suffix = self._agent(agent_id)
        return PageSource("z", self._key(family, agent_id=agent_id), prefix, suffix, lo=lo,
                          hi=hi, newest_first=newest_first)

    def _s(self, skey: str, family: str, agent_id: str, lo: str = "-inf") -> PageSource:
        prefix, suffix = self._agent(agent_id)
        return PageSource("S" if self.sorted_families else "s", skey, prefix, suffix,
                          order_key=self._key(family, agent_id=agent_id), lo=lo,
                          newest_first=True)

    def _recent_src(self, agent_id: str) -> PageSource:
        return self._z("timeline", agent_id, newest_first=True)

    def _timeline_src(self, agent_id: str, start: int | None = None, end: int | None = None, *,
                      newest_first: bool = False) -> PageSource:
        return self._z("timeline", agent_id, score_arg(start, "-inf"), score_arg(end, "+inf"),
                       newest_first=newest_first)

    def _high_reward_src(self, agent_id: str, min_reward: float = 0.5) -> PageSource:
        return self._z("rewards", agent_id, score_arg(min_reward, "-inf"), newest_first=True)

    def _by_type_src(self, agent_id: str, action_type: str) -> PageSource:
        return self._of_one_src(self._key("types", agent_id=agent_id, action_type=action_type),
                                agent_id)

    def _by_target_src(self, agent_id: str, target_id: str) -> PageSource:
        return self._of_one_src(
            self._key("targets", agent_id=agent_id, action_target_id=target_id), agent_id)

    def _of_one_src(self, key: str, agent_id: str) -> PageSource:
        if self.sorted_families:  # layout 4: the key is sorted by step itself
            prefix, suffix = self._agent(agent_id)
            return PageSource("z", key, prefix, suffix, newest_first=True)
        return self._s(key, "timeline", agent_id)

    def _successful_src(self, agent_id: str, target_id: str) -> PageSource:
        return self._s(self._key("targets", agent_id=agent_id, action_target_id=target_id),
                       "rewards", agent_id, lo="(0")

    def _sim_src(self, mode: str, key: str, simulation_id: str, step: str = "") -> PageSource:
        if self.cluster:
            raise Unsupported("pages of simulation-level queries (at_step, simulation_actions) "
                              "are not supported on a Redis Cluster: a simulation's actions "
                              "are in their agents' slots (docs/cluster.md)")
        prefix, middle, suffix = self._sim_shape()
        return PageSource(mode, key, prefix, suffix, middle=middle, simulation=simulation_id,
                          step=step, sim_field=self.spec.codec.wire("simulation_id"))

    def _at_step_src(self, simulation_id: str, step: int) -> PageSource:
        key = self._key("sim_step", simulation_id=simulation_id, step_number=step)
        return self._sim_src("i", key, simulation_id, str(step))

    def _sim_actions_src(self, simulation_id: str) -> PageSource:
        return self._sim_src("l", self._key("sim_actions", simulation_id=simulation_id),
                             simulation_id)


_SOURCES: dict[str, Any] = {
    "recent": ActionVerbs._recent_src,
    "timeline": ActionVerbs._timeline_src,
    "high_reward": ActionVerbs._high_reward_src,
    "by_type": ActionVerbs._by_type_src,
    "by_target": ActionVerbs._by_target_src,
    "successful_interactions": ActionVerbs._successful_src,
    "at_step": ActionVerbs._at_step_src,
    "simulation_actions": ActionVerbs._sim_actions_src,
}
_NAMES = [*_SOURCES, "range", "members"]
