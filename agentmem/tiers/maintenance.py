"""Memory tiers: short-term (STM) -> intermediate (IM) -> the SQL archive.

:class:`TierPolicy` is the one object a user configures: the short-term window
(by steps and/or by time), the per-agent capacity of each tier, the IM TTL and
how importance weighs against age. :class:`Tiers` applies it:

- :meth:`Tiers.maintain` moves, per agent, the actions outside the window or
  over the STM capacity to IM (compressed, with their importance), after
  archiving them in full when an archive is configured, and evicts IM entries
  over the IM capacity (archived already, so nothing is lost);
- :meth:`Tiers.transition` moves given actions (section 6, without its defects);
- :meth:`Tiers.pin` / :meth:`Tiers.unpin` keep an action where it is;
- :meth:`Tiers.start` runs ``maintain`` in a background thread.

Reads across the tiers are in :mod:`agentmem.tiers.reads`. See ``docs/tiers.md``.
On a Redis Cluster (a ``ClusterMemory``) the STM -> IM move runs in two parts, the
agent's slot then the simulation's (``docs/cluster.md``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.config import DEFAULT_IM_TTL, TierSettings, read
from agentmem.errors import AgentMemError, BackendError, ConfigError, InvalidInput
from agentmem.lua.tiers import EVICT_IM, EVICT_PLAN, TO_IM, TO_IM_AGENT, TO_IM_SIM
from agentmem.model.analytics import action_importance
from agentmem.model.records import Action
from agentmem.model.schema import Template
from agentmem.plans.keyspace import Layout, check_part
from agentmem.plans.plan import Plan, script_call, single
from agentmem.repository.actions import ActionOps
from agentmem.repository.base import RecordOps

__all__ = ["DEFAULT_IM_TTL", "MaintainReport", "Shapes", "TierPolicy", "Tiers"]

log = logging.getLogger("agentmem.tiers.maintenance")


_AGENT_BATCH = 200
"""Agents whose state one maintenance round trip reads."""


def _positive(value: Any, name: str, *, integer: bool = True) -> None:
    if value is None:
        return
    number = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not number or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive {'int' if integer else 'number'} or "
                          f"None, got {value!r}")


@dataclass(frozen=True)
class TierPolicy:
    """How much each agent keeps in each tier, and for how long.

    - ``stm_steps``: STM keeps the actions of the newest ``stm_steps`` steps
      (counted back from ``now_step`` given to ``maintain``, else from the
      agent's newest step); older ones move to IM.
    - ``stm_seconds``: STM keeps actions written less than this long ago.
    - ``stm_capacity`` / ``im_capacity``: at most this many actions per agent
      in the tier after ``maintain`` (pinned actions are exempt and not counted).
    - ``im_ttl``: seconds an IM hash lives without maintenance (``None``: no TTL).
    - ``importance_weight``: when a tier is over capacity, actions leave in the
      order of ``step + importance * importance_weight``, lowest first, ties by
      lower importance, then older id: among actions of the same age the more
      important stay longer; a weight lets importance outlive age.
    - ``importance``: the score function (default: section 7's formula).
    """

    stm_steps: int | None = None
    stm_seconds: float | None = None
    stm_capacity: int | None = None
    im_capacity: int | None = None
    im_ttl: int | None = DEFAULT_IM_TTL
    importance_weight: float = 0.0
    importance: Callable[[Action], float] = action_importance

    def __post_init__(self) -> None:
        read(TierSettings, {f.name: getattr(self, f.name) for f in fields(self)
                            if f.name != "importance"}, env={})
        if not callable(self.importance):
            raise ConfigError("importance must be a callable taking an Action")

    @classmethod
    def from_settings(cls, settings: TierSettings,
                      importance: Callable[[Action], float] = action_importance) -> TierPolicy:
        """The policy of ``settings`` (``maintain_interval`` is not part of it)."""
        return cls(**settings.policy_fields(), importance=importance)


@dataclass
class MaintainReport:
    """What one :meth:`Tiers.maintain` did, summed over agents."""

    agents: int = 0
    to_im: int = 0  # actions moved STM -> IM
    archived: int = 0  # rows the archive inserted on the way
    evicted: int = 0  # IM entries removed (archived before)
    missing: int = 0  # ids in the STM timeline whose hash had expired
    refused: list[str] = field(default_factory=list)  # ids a key of the wrong type kept


def _pieces(template: Template, fixed: dict[str, str], variables: Sequence[str]) -> list[str]:
    """The literal text around ``variables`` (in the order they appear) with ``fixed``
    rendered: ``len(variables) + 1`` pieces."""
    out, cur = [], []
    seen = []
    for kind, v in template.parts:
        if kind == "L":
            cur.append(v)
        elif v in variables:
            out.append("".join(cur))
            cur = []
            seen.append(v)
        else:
            cur.append(Template(template.pattern, (("F", v),)).render(fixed))
    out.append("".join(cur))
    if seen != list(variables):
        raise ConfigError(f"key pattern {template.pattern!r} does not have {variables} in order")
    return out


class Shapes:
    """The keys of one agent as the tier scripts build them (prefixes and suffixes)."""

    def __init__(self, layout: Layout, agent_id: str) -> None:
        check_part("agent_id", agent_id)
        a = {"agent_id": agent_id}
        t = layout.template
        self.hash = _pieces(t("action"), a, ["action_id"])
        self.timeline = t("timeline").render(a)
        self.relative = t("relative_index").render(a)
        self.rewards = t("rewards").render(a)
        self.types = _pieces(t("types"), a, ["action_type"])
        self.targets = _pieces(t("targets"), a, ["action_target_id"])
        self.sim_actions = _pieces(t("sim_actions"), a, ["simulation_id"])
        self.sim_step = _pieces(t("sim_step"), a, ["simulation_id", "step_number"])
        self.sim_steps = _pieces(t("sim_steps"), a, ["simulation_id"])
        self.sim_by_type = _pieces(t("sim_by_type"), a, ["simulation_id"])
        self.im_hash = _pieces(t("im_action"), a, ["action_id"])
        self.im_timeline = t("im_timeline").render(a)
        self.grid = t("grid").render(a)
        self.sim_grid = _pieces(t("sim_grid"), a, ["simulation_id", "step_number"])

    def argv(self) -> list[str]:
        return [*self.hash, self.timeline, self.relative, self.rewards, *self.types,
                *self.targets, *self.sim_actions, *self.sim_step, *self.sim_steps,
                *self.sim_by_type, *self.im_hash, self.im_timeline, self.grid,
                *self.sim_grid]


def _order_key(weight: float) -> Callable[[tuple[float, float, str]], tuple[float, float, str]]:
    def key(item: tuple[float, float, str]) -> tuple[float, float, str]:
        step, importance, aid = item
        return (step + importance * weight, importance, aid)
    return key


class Tiers:
    """Applies a :class:`TierPolicy` to a :class:`~agentmem.Memory`; see the module doc."""

    def __init__(self, memory: Memory, policy: TierPolicy | None = None, *,
                 archive: Archive | None = None) -> None:
        self.memory = memory
        self.policy = policy or TierPolicy()
        self.archive = archive
        self.layout = memory.actions.layout
        stm_ttl = memory.actions.spec.ttl
        if self.policy.stm_seconds is not None and stm_ttl and self.policy.stm_seconds >= stm_ttl:
            raise ConfigError(f"stm_seconds ({self.policy.stm_seconds}) must be shorter than the "
                              f"action TTL ({stm_ttl} s), or actions expire before they move")
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: AgentMemError | None = None
        self.last_report: MaintainReport | None = None

    @property
    def cluster(self) -> bool:
        """Whether the memory is a Redis Cluster (TO_IM then runs in two parts)."""
        return bool(getattr(getattr(self.memory, "runner", None), "cluster", False))

    def _shapes(self, agent_id: str) -> Shapes:
        return Shapes(self.layout, agent_id)

    def _pinned_key(self, agent_id: str) -> str:
        return self.layout.key("pinned", agent_id=agent_id)

    # -- moving ----------------------------------------------------------------------------

    def _to_im_plan(self, agent_id: str, moves: Sequence[tuple[str, float]]
                    ) -> Plan[tuple[list[str], list[str], list[str], list[str]]]:
        """One agent's move: TO_IM on one server (atomic per action); on a cluster its
        agent-slot part, TO_IM_AGENT, which also reports (simulation, id, step, type)
        flattened, for :meth:`_to_im_sim_plans`."""
        sh = self._shapes(agent_id)
        argv: list[Any] = [self.policy.im_ttl or 0, *sh.argv(), len(moves)]
        for aid, importance in moves:
            argv += (aid, _importance_text(importance))

        def parse(raw: Any) -> tuple[list[str], list[str], list[str], list[str]]:
            parts = [[_text(x) for x in part] for part in raw]
            return parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else []

        if self.cluster:
            return single(script_call(TO_IM_AGENT, argv, route=sh.timeline), parse)
        return single(script_call(TO_IM, argv), parse)

    def _to_im_sim_plans(self, sims: Sequence[str]) -> list[Plan[list[str]]]:
        """The simulation-slot part of the moves on a cluster (TO_IM_SIM), one call per
        simulation and 500 ids, from the flattened (simulation, id, step, type) reports."""
        per_sim: dict[str, list[str]] = {}
        for i in range(0, len(sims), 4):
            per_sim.setdefault(sims[i], []).extend(sims[i + 1:i + 4])
        sh = self._shapes("_")
        shapes = [*sh.sim_actions, *sh.sim_step, *sh.sim_steps, *sh.sim_by_type,
                  *sh.sim_grid]
        plans = []
        for sim, flat in per_sim.items():
            route = self.layout.key("sim_actions", simulation_id=sim)
            for start in range(0, len(flat), 1500):
                plans.append(single(script_call(TO_IM_SIM, [*shapes, sim,
                                                            *flat[start:start + 1500]],
                                                route=route),
                                    lambda raw: [_text(x) for x in raw]))
        return plans

    def transition(self, agent_id: str, action_ids: Iterable[str]) -> list[str]:
        """Move these STM actions of ``agent_id`` to IM (archived first when an archive is
        configured); return the ids moved. Ids not in STM are skipped."""
        ids = [str(i) for i in action_ids]
        for i in ids:
            check_part("action_id", i)
        actions = [a for a in self.memory.actions.get_many(ids, agent_id=agent_id)
                   if a is not None]
        report = MaintainReport()
        self._move(agent_id, actions, report)
        return [str(a.action_id) for a in actions if str(a.action_id) not in report.refused]

    def _move(self, agent_id: str, actions: Sequence[Action], report: MaintainReport) -> None:
        self._move_many([(agent_id, list(actions))], report)

    def _move_many(self, leaving: Sequence[tuple[str, list[Action]]],
                   report: MaintainReport) -> None:
        """Archive every leaving action (one transaction), then move each agent's to IM."""
        everything = [a for _, acts in leaving for a in acts]
        if not everything:
            return
        if self.archive is not None:
            report.archived += self.archive.write(everything)  # before anything leaves Redis
        imp = self.policy.importance
        plans = []
        for agent_id, actions in leaving:
            moves = [(str(a.action_id), _checked_importance(imp(a))) for a in actions]
            plans += [self._to_im_plan(agent_id, moves[start:start + 500])
                      for start in range(0, len(moves), 500)]
        sims: list[str] = []
        for moved, missing, refused, sim_parts in self.memory.runner.run(_gather(plans)):
            report.to_im += len(moved)
            report.missing += len(missing)
            report.refused += refused
            sims += sim_parts
            if refused:
                log.error("keys of the wrong type kept %d actions in STM: %s", len(refused),
                          refused[:5])
        if sims:  # a cluster: the simulation-slot part, after every agent part
            self._finish_on_simulations(sims)

    def _finish_on_simulations(self, sims: Sequence[str]) -> None:
        """Remove moved actions from the simulation-level indices (a cluster's second
        TO_IM part; a crash before it leaves orphans that ``integrity.repair`` removes)."""
        for refused in self.memory.runner.run(_gather(self._to_im_sim_plans(sims))):
            if refused:
                log.error("simulation keys of the wrong type kept %d moved actions in the "
                          "simulation-level indices: %s", len(refused), refused[:5])

    # -- pins ------------------------------------------------------------------------------

    def pin(self, agent_id: str, action_id: str) -> None:
        """Keep the action in its tier: maintenance skips it and its hash loses its TTL."""
        check_part("action_id", action_id)
        sh = self._shapes(agent_id)
        pipe = self.memory.client.pipeline(transaction=True)
        pipe.sadd(self._pinned_key(agent_id), action_id)
        pipe.persist(sh.hash[0] + action_id + sh.hash[1])
        pipe.persist(sh.im_hash[0] + action_id + sh.im_hash[1])
        pipe.execute()

    def unpin(self, agent_id: str, action_id: str) -> None:
        """Undo :meth:`pin`: the hash gets its tier's TTL again."""
        check_part("action_id", action_id)
        sh = self._shapes(agent_id)
        pipe = self.memory.client.pipeline(transaction=True)
        pipe.srem(self._pinned_key(agent_id), action_id)
        stm_ttl = self.memory.actions.spec.ttl
        if stm_ttl:
            pipe.expire(sh.hash[0] + action_id + sh.hash[1], stm_ttl)
        if self.policy.im_ttl:
            pipe.expire(sh.im_hash[0] + action_id + sh.im_hash[1], self.policy.im_ttl)
        pipe.execute()

    def pinned(self, agent_id: str) -> set[str]:
        """Ids of the agent's pinned actions."""
        raw: Any = self.memory.client.smembers(self._pinned_key(agent_id))
        return {_text(x) for x in raw}

    # -- maintenance -----------------------------------------------------------------------

    def agents(self, batch: int = 1000) -> list[str]:
        """Agents that have an STM or IM timeline (found with SCAN, never KEYS)."""
        found: set[str] = set()
        for family in ("timeline", "im_timeline"):
            pre, suf = _pieces(self.layout.template(family), {}, ["agent_id"])
            for key in scan_keys(self.memory, _glob(pre) + "*" + _glob(suf), batch):
                k = _text(key)
                if k.startswith(pre) and k.endswith(suf) and len(k) > len(pre) + len(suf):
                    agent = k[len(pre):len(k) - len(suf)]
                    if ":" not in agent:  # agent:x:im:action:timeline is not agent "x:im"
                        found.add(agent)
        return sorted(found)

    def maintain(self, agent_ids: Iterable[str] | None = None, *, now_step: int | None = None,
                 now: float | None = None) -> MaintainReport:
        """Apply the policy to each agent (all agents found by SCAN when not given).

        ``now_step``: the simulation's current step, for ``stm_steps``; ``now``:
        the current time in seconds (default: the server's clock), for ``stm_seconds``.
        """
        report = MaintainReport()
        agents = self.agents() if agent_ids is None else list(agent_ids)
        if now is None and self.policy.stm_seconds is not None:
            now = _server_time(self.memory)
        for start in range(0, len(agents), _AGENT_BATCH):
            self._maintain_batch(agents[start:start + _AGENT_BATCH], report, now_step, now)
        self.last_report = report
        return report

    def _maintain_batch(self, agents: Sequence[str], report: MaintainReport,
                        now_step: int | None, now: float | None) -> None:
        """One batch of agents: read their state in one round trip, archive everything
        leaving STM in one transaction, then move and evict agent by agent."""
        p = self.policy
        shapes = [self._shapes(a) for a in agents]
        pipe = self.memory.client.pipeline(transaction=False)
        for agent_id, sh in zip(agents, shapes, strict=True):
            pipe.zrange(sh.timeline, 0, -1, withscores=True)
            pipe.smembers(self._pinned_key(agent_id))
            pipe.zcard(sh.im_timeline)
        state = pipe.execute()
        ims: list[int] = []
        pins: list[set[str]] = []
        stms: list[list[tuple[str, float]]] = []
        for n in range(len(agents)):
            stm, pinned_raw, im_count = state[3 * n:3 * n + 3]
            pinned = {_text(x) for x in pinned_raw}
            stms.append([(_text(m), float(s)) for m, s in stm if _text(m) not in pinned])
            ims.append(int(im_count))
            pins.append(pinned)
        # the actions each agent's rules need, read for all agents in one round trip
        wanted = [self._candidates(stm_ids, now_step) for stm_ids in stms]
        fetched = self.memory.runner.run(_gather([
            ActionOps.get_many.build(self.memory.actions, ids, agent_id=agent_id)
            for agent_id, ids in zip(agents, wanted, strict=True)])) if any(wanted) else \
            [[] for _ in agents]
        leaving: list[tuple[str, list[Action]]] = []
        for n, agent_id in enumerate(agents):
            got = [a for a in fetched[n] if a is not None]
            leave = self._stm_leavers(stms[n], got, now_step, now)
            leaving.append((agent_id, leave))
            ims[n] += len(leave)
        self._move_many(leaving, report)
        over = [(agent_id, sh, pinned) for (agent_id, _), sh, im_count, pinned
                in zip(leaving, shapes, ims, pins, strict=True)
                if p.im_capacity is not None and im_count > p.im_capacity]
        if over:
            self._evict_im(over, report)
        report.agents += len(agents)

    def _by_window(self, stm_ids: list[tuple[str, float]], now_step: int | None) -> set[str]:
        p = self.policy
        if p.stm_steps is None or not stm_ids:
            return set()
        top = now_step if now_step is not None else max(s for _, s in stm_ids)
        return {aid for aid, s in stm_ids if s <= top - p.stm_steps}

    def _candidates(self, stm_ids: list[tuple[str, float]], now_step: int | None) -> list[str]:
        """The STM ids whose actions the policy must read: those leaving by the step
        window, or all of them when time or capacity has to be looked at."""
        p = self.policy
        leave = self._by_window(stm_ids, now_step)
        if p.stm_seconds is not None or (
                p.stm_capacity is not None and len(stm_ids) - len(leave) > p.stm_capacity):
            return [aid for aid, _ in stm_ids]
        return sorted(leave)

    def _stm_leavers(self, stm_ids: list[tuple[str, float]], actions: list[Action],
                     now_step: int | None, now: float | None) -> list[Action]:
        p = self.policy
        leave = self._by_window(stm_ids, now_step)
        if p.stm_seconds is not None and now is not None:
            leave.update(str(a.action_id) for a in actions
                         if a.stored_at is not None and a.stored_at <= now - p.stm_seconds)
        staying = [a for a in actions if str(a.action_id) not in leave]
        if p.stm_capacity is not None and len(staying) > p.stm_capacity:
            order = _order_key(p.importance_weight)
            ranked = sorted(staying, key=lambda a: order(
                (a.step_number, _checked_importance(p.importance(a)), str(a.action_id))))
            leave.update(str(a.action_id) for a in ranked[:len(staying) - p.stm_capacity])
        return [a for a in actions if str(a.action_id) in leave]

    def _evict_im(self, over: Sequence[tuple[str, Shapes, set[str]]],
                  report: MaintainReport) -> None:
        """Remove from IM, agent by agent, the entries over ``im_capacity`` (lowest
        ``step + importance * weight`` first, ranked on the server), making sure the
        archive has them first."""
        p = self.policy
        assert p.im_capacity is not None
        plans = [single(script_call(EVICT_PLAN, [*sh.im_hash, sh.im_timeline,
                                                 self._pinned_key(agent_id), p.im_capacity,
                                                 repr(float(p.importance_weight))],
                                    route=sh.im_timeline),
                        lambda raw: [_text(x) for x in raw])
                 for agent_id, sh, _ in over]
        planned: list[list[str]] = self.memory.runner.run(_gather(plans))
        victims = [(agent_id, sh, flat[0::2], flat[1::2])
                   for (agent_id, sh, _), flat in zip(over, planned, strict=True) if flat]
        if not victims:
            return
        if self.archive is not None:
            self._ensure_archived(victims)
        evictions = [single(script_call(EVICT_IM, [*sh.im_hash, sh.im_timeline,
                                                   *ids[start:start + 500]],
                                        route=sh.im_timeline), int)
                     for _, sh, ids, _ in victims for start in range(0, len(ids), 500)]
        gone: list[int] = self.memory.runner.run(_gather(evictions))
        report.evicted += sum(gone)

    def _ensure_archived(self, victims: Sequence[tuple[str, Shapes, list[str], list[str]]]
                         ) -> None:
        """IM entries are archived in full when they leave STM; one that is not (written
        to IM by other code) is archived in its compressed form rather than lost."""
        assert self.archive is not None
        have = self.archive.archived(
            (sim, agent_id, aid)
            for agent_id, _, ids, sims in victims for aid, sim in zip(ids, sims, strict=True))
        lacking = [(agent_id, [aid for aid, sim in zip(ids, sims, strict=True)
                               if (sim, agent_id, aid) not in have])
                   for agent_id, _, ids, sims in victims]
        lacking = [(agent_id, ids) for agent_id, ids in lacking if ids]
        if not lacking:
            return
        get_many: Any = RecordOps.get_many.build
        found = self.memory.runner.run(_gather([
            get_many(self.memory.im_actions, ids, agent_id=agent_id)
            for agent_id, ids in lacking]))
        self.archive.write([
            Action(agent_id=a.agent_id, simulation_id=a.simulation_id,
                   step_number=a.step_number, action_type=a.action_type,
                   action_id=a.action_id, reward=a.reward, action_target_id=a.action_target_id)
            for got in found for a in got if a is not None])

    # -- the background runner -------------------------------------------------------------

    def start(self, interval: float = 1.0, **maintain_args: Any) -> None:
        """Run :meth:`maintain` every ``interval`` seconds in a daemon thread.

        An error stops nothing: it is kept and raised by :meth:`stop` (or
        :meth:`raise_error`), and the runner tries again on its next round.
        """
        _positive(interval, "interval", integer=False)
        if self._thread is not None:
            raise ConfigError("the maintenance runner is already running")
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.maintain(**maintain_args)
                except Exception as exc:  # kept for the caller, never silent
                    if self._error is None:
                        self._error = exc if isinstance(exc, AgentMemError) else \
                            BackendError(f"maintenance failed: {type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=run, name="agentmem-tiers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the runner (after its current round) and raise its kept error, if any."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.raise_error()

    def raise_error(self) -> None:
        err, self._error = self._error, None
        if err is not None:
            raise err


def _gather(plans: Sequence[Plan[Any]]) -> Plan[list[Any]]:
    """Many plans as one: all their calls in one round trip, a list of their results."""
    calls = [list(p.calls) for p in plans]

    def parse(raw: list[Any]) -> list[Any]:
        out, pos = [], 0
        for p, c in zip(plans, calls, strict=True):
            out.append(p.parse(raw[pos:pos + len(c)]))
            pos += len(c)
        return out

    return Plan([c for cs in calls for c in cs], parse)


def _importance_text(value: float) -> str:
    """Importance as stored in IM: 6 significant digits (0.30000000000000004 -> "0.3");
    a retention score needs no more, and the IM entry stays small."""
    return format(value, ".6g")


def _checked_importance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(f"importance must be a number in [0, 1], got {value!r}")
    return float(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _masters(memory: Any) -> list[Any]:
    """Clients of the nodes that hold the data: the server, or every master of a Redis
    Cluster (in slot-map order)."""
    runner: Any = getattr(memory, "runner", None)
    if runner is not None and getattr(runner, "cluster", False):
        return [runner.node_client(node) for node in runner.primaries()]
    return [memory.client]


def scan_keys(memory: Any, match: str, batch: int) -> Iterable[Any]:
    """SCAN MATCH on the server, or on every master of a Redis Cluster."""
    for client in _masters(memory):
        yield from client.scan_iter(match=match, count=batch)


def used_memory(memory: Any) -> int:
    """Redis ``INFO memory`` ``used_memory``, in bytes; on a Redis Cluster, summed over
    its masters (the nodes that hold the data)."""
    return sum(int(client.info("memory")["used_memory"]) for client in _masters(memory))


def _server_time(memory: Any) -> float:
    """The server's clock in seconds (a cluster: its first master's)."""
    sec, _ = _masters(memory)[0].time()
    return float(sec)


def _glob(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
