"""Simulation-level queries: actions at a step, in write order, steps, type counts."""

from __future__ import annotations

from typing import Any

from agentmem.errors import DecodeError
from agentmem.lua.scripts import (
    GET_MANY,
    SIM_FETCH,
)
from agentmem.model.records import Action
from agentmem.plans.keyspace import (
    candidate_agents,
)
from agentmem.plans.plan import (
    Arg,
    FollowUp,
    Plan,
    check_index,
    check_limit,
    command,
    score_arg,
    script_call,
    single,
)
from agentmem.plans.runner import operation
from agentmem.repository.actioncore import ActionCore


class SimulationQueries(ActionCore):
    """Queries over a simulation's indices (its agents' hashes are read back in the
    same round trip; two on a Redis Cluster)."""

    def _sim_fetch(self, source: str, kind: str, start: int, stop: int, limit: int | None,
                   simulation_id: str, step: int | None = None) -> Plan[list[Action]]:
        """The actions an index of ``simulation_id`` lists; an id whose hash is now an
        action of another simulation (given again after its action left memory) is
        skipped."""
        # agent:{agent_id}:action:{action_id} -> prefix, middle, suffix around both ids
        prefix, middle, suffix = self._sim_shape()
        argv: list[Arg] = [source, kind, start, stop, prefix, middle, suffix, check_limit(limit),
                           "" if step is None else step, simulation_id,
                           self.spec.codec.wire("simulation_id")]
        if self.cluster:
            return self._sim_fetch_split(source, kind, start, stop, check_limit(limit), step,
                                         (prefix, middle, suffix), simulation_id)
        return single(script_call(SIM_FETCH, argv), self._decode_list)

    def _sim_fetch_split(self, source: str, kind: str, start: int, stop: int, limit: int,
                         step: int | None, shape: tuple[str, str, str], simulation_id: str
                         ) -> Plan[list[Action]]:
        """Cluster mode: :data:`~agentmem.lua.scripts.SIM_FETCH` in two round trips, as the
        hashes of a simulation's actions are in their agents' slots: the ids from the
        simulation's slot, then one ``GET_MANY`` per agent (grouped per node by the
        runner). The same ids, order, agent resolution and limit as the script."""
        prefix, middle, suffix = shape
        first = command("SMEMBERS", source) if kind == "set" else \
            command("LRANGE", source, start, stop)
        want = "" if step is None else str(step)
        sim = simulation_id.encode()
        sim_field = self.spec.codec.wire("simulation_id").encode()

        def fetch(raw: list[Any]) -> list[Action]:
            if isinstance(raw[0], Exception):
                raise raw[0]
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in raw[0]]
            if kind == "set":
                ids.sort(key=lambda i: i.encode())
            options = [candidate_agents(i, want) for i in ids]
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
                        if h and _field(h, sim_field) == sim:
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
        return self._sim_fetch(key, "set", 0, -1, limit, simulation_id, step)

    @operation
    def simulation_actions(self, /, simulation_id: str, start: int = 0, stop: int = -1
                           ) -> Plan[list[Action]]:
        """A slice of a simulation's actions in write order (LRANGE semantics)."""
        key = self._key("sim_actions", simulation_id=simulation_id)
        start, stop = check_index("start", start), check_index("stop", stop)
        return self._sim_fetch(key, "list", start, stop, None, simulation_id)

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


def _field(h: Any, name: bytes) -> Any:
    """A field of a hash as ``HGETALL`` answers it (a flat list, or a dict)."""
    if isinstance(h, dict):
        return h.get(name)
    for i in range(0, len(h) - 1, 2):
        if h[i] == name:
            return h[i + 1]
    return None
