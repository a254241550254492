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
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agentmem.backends.masters import scan_keys, server_time
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.config import TierSettings, read
from agentmem.errors import AgentMemError, BackendError, ConfigError
from agentmem.lua.tiers import EVICT_IM, EVICT_PLAN, PIN, TO_IM, TO_IM_AGENT, TO_IM_SIM
from agentmem.model.records import Action
from agentmem.plans.keyspace import check_part
from agentmem.plans.keyspace import key_pieces as _pieces
from agentmem.plans.plan import Plan, command, every_reply, script_call, single
from agentmem.repository.base import RecordOps
from agentmem.tiers.archiving import archive_leaving, read_versions
from agentmem.tiers.policy import (
    DEFAULT_IM_TTL,
    MaintainReport,
    TierPolicy,
    _checked_importance,
    _importance_text,
)
from agentmem.tiers.shapes import Shapes, _gather, _glob, _pairs, _text

__all__ = ["DEFAULT_IM_TTL", "MaintainReport", "Shapes", "TierPolicy", "Tiers"]

Moved = tuple[list[str], list[str], list[str], list[str], list[str], list[str]]
"""A move's reply: moved, missing, refused ids, the simulation parts (a cluster), pinned,
changed (updated since they were read: left in STM)."""

SLICE = 50
"""Actions per script call of a transition or an eviction: each call stays within a few
milliseconds of server time, so that no other client waits longer (the calls of one
round still go in one round trip)."""

log = logging.getLogger("agentmem.tiers.maintenance")

PLAN_SLICE = 1000
"""IM entries one eviction plan names at most (the next round plans the rest)."""
SCAN_SLICE = 5000
"""Timeline entries per ``ZRANGE`` when maintenance reads an agent's timeline."""
_AGENT_BATCH = 200
"""Agents whose state one maintenance round trip reads."""


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
        self._maintain_args: dict[str, Any] = {}
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

    def _to_im_plan(self, agent_id: str, moves: Sequence[tuple[str, float, str]]
                    ) -> Plan[Moved]:
        """One agent's move: TO_IM on one server (atomic per action); on a cluster its
        agent-slot part, TO_IM_AGENT, which also reports (simulation, id, step, type)
        flattened, for :meth:`_to_im_sim_plans`. ``moves``: (id, importance, the digest of
        the hash as read and archived, :func:`~agentmem.tiers.archiving.hash_digest`). A
        pinned id is left where it is, and so is one whose hash changed since it was read
        (the script checks both in the same atomic step)."""
        sh = self._shapes(agent_id)
        argv: list[Any] = [self.policy.im_ttl or 0, *sh.argv(), len(moves)]
        for aid, importance, _ in moves:
            argv += (aid, _importance_text(importance))
        argv += (sh.retired, self._pinned_key(agent_id), sh.families_kind)
        argv += [seen for _, _, seen in moves]
        cluster = self.cluster

        def parse(raw: Any) -> Moved:
            parts = [[_text(x) for x in part] for part in raw]
            if cluster:  # moved, missing, refused, simulation parts, pinned, changed
                return parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
            return parts[0], parts[1], parts[2], [], parts[3], parts[4]

        if cluster:
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
        configured); return the ids moved. Ids not in STM, and pinned ids, are skipped."""
        ids = [str(i) for i in action_ids]
        for i in ids:
            check_part("action_id", i)
        pinned = self.pinned(agent_id)
        read = self.memory.runner.run(read_versions(self.memory, agent_id, ids))
        actions = [x for x in read if x is not None and str(x[0].action_id) not in pinned]
        report = MaintainReport()
        moved = self._move_many([(agent_id, actions)], report)
        return [i for i in ids if i in moved]

    def _move_many(self, leaving: Sequence[tuple[str, list[tuple[Action, str]]]],
                   report: MaintainReport) -> set[str]:
        """Archive every leaving action (one transaction), then move each agent's to IM
        unless its hash changed since it was read (each action comes with the digest of its
        hash as read); return the ids moved."""
        everything = [a for _, acts in leaving for a, _ in acts]
        if not everything:
            return set()
        if self.archive is not None:  # before anything leaves Redis
            inserted, kept = archive_leaving(self.memory, self.archive, leaving)
            report.archived += inserted
            if kept:  # the archive holds other actions under these ids: they stay
                report.refused += [str(a.action_id) for a in kept]
                stay = {id(a) for a in kept}
                leaving = [(agent_id, [(a, seen) for a, seen in acts if id(a) not in stay])
                           for agent_id, acts in leaving]
        imp = self.policy.importance
        plans = []
        for agent_id, actions in leaving:
            moves = [(str(a.action_id), _checked_importance(imp(a)), seen)
                     for a, seen in actions]
            plans += [self._to_im_plan(agent_id, moves[start:start + SLICE])
                      for start in range(0, len(moves), SLICE)]
        sims: list[str] = []
        done: set[str] = set()
        for moved, missing, refused, sim_parts, pinned, changed in self.memory.runner.run(
                _gather(plans)):
            done.update(moved)
            report.to_im += len(moved)
            report.missing += len(missing)
            report.pinned += len(pinned)
            report.changed += len(changed)
            report.refused += refused
            sims += sim_parts
            if refused:
                log.error("keys of the wrong type kept %d actions in STM: %s", len(refused),
                          refused[:5])
        if sims:  # a cluster: the simulation-slot part, after every agent part
            self._finish_on_simulations(sims)
        return done

    def _finish_on_simulations(self, sims: Sequence[str]) -> None:
        """Remove moved actions from the simulation-level indices (a cluster's second
        TO_IM part; a crash before it leaves orphans that ``integrity.repair`` removes)."""
        for refused in self.memory.runner.run(_gather(self._to_im_sim_plans(sims))):
            if refused:
                log.error("simulation keys of the wrong type kept %d moved actions in the "
                          "simulation-level indices: %s", len(refused), refused[:5])

    # -- pins ------------------------------------------------------------------------------

    def pin(self, agent_id: str, action_id: str) -> str | None:
        """Keep the action in its tier: maintenance and transitions skip it, eviction
        leaves it, and its hash loses its TTL. Return its tier (``"stm"`` or ``"im"``),
        or ``None`` when the agent has no such action (then nothing is pinned)."""
        return self.memory.runner.run(self._pin_plan(agent_id, action_id, pin=True))

    def unpin(self, agent_id: str, action_id: str) -> str | None:
        """Undo :meth:`pin`: the hash gets its tier's TTL again. Return its tier, or
        ``None`` when the action is in neither (its id leaves the pinned set anyway)."""
        return self.memory.runner.run(self._pin_plan(agent_id, action_id, pin=False))

    def _pin_plan(self, agent_id: str, action_id: str, *, pin: bool) -> Plan[str | None]:
        """One atomic script (:data:`~agentmem.lua.tiers.PIN`) in the agent's slot."""
        check_part("action_id", action_id)
        sh = self._shapes(agent_id)
        stm_ttl = self.memory.actions.spec.ttl
        keys = [self._pinned_key(agent_id), sh.hash[0] + action_id + sh.hash[1],
                sh.im_hash[0] + action_id + sh.im_hash[1]]
        argv = ["1" if pin else "0", action_id, str(stm_ttl) if stm_ttl else "",
                str(self.policy.im_ttl) if self.policy.im_ttl else ""]
        return single(script_call(PIN, argv, keys=keys),
                      lambda raw: {1: "stm", 2: "im"}.get(int(raw)))

    def pinned(self, agent_id: str) -> set[str]:
        """Ids of the agent's pinned actions."""
        plan = single(command("SMEMBERS", self._pinned_key(agent_id)),
                      lambda raw: {_text(x) for x in raw})
        return self.memory.runner.run(plan)

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
        report = self._rounds(agent_ids, now_step, now, dry_run=False)
        self.last_report = report
        return report

    def plan(self, agent_ids: Iterable[str] | None = None, *, now_step: int | None = None,
             now: float | None = None) -> MaintainReport:
        """What :meth:`maintain` would do now, changing nothing (reads only): a report
        with ``dry_run`` set, ``to_im`` and ``moving`` (per agent, the ids that would move
        STM -> IM) and ``evicted``, the IM entries that would leave (at most: pins of
        ids gone from Redis count as IM entries)."""
        return self._rounds(agent_ids, now_step, now, dry_run=True)

    def _rounds(self, agent_ids: Iterable[str] | None, now_step: int | None,
                now: float | None, *, dry_run: bool) -> MaintainReport:
        report = MaintainReport(dry_run=dry_run)
        agents = self.agents() if agent_ids is None else list(agent_ids)
        if now is None and self.policy.stm_seconds is not None:
            now = server_time(self.memory)
        for start in range(0, len(agents), _AGENT_BATCH):
            self._maintain_batch(agents[start:start + _AGENT_BATCH], report, now_step, now)
        return report

    def _maintain_batch(self, agents: Sequence[str], report: MaintainReport,
                        now_step: int | None, now: float | None) -> None:
        """One batch of agents: read their state in one round trip, archive everything
        leaving STM in one transaction, then move and evict agent by agent (a plan:
        only count what would be done)."""
        p = self.policy
        shapes = [self._shapes(a) for a in agents]
        calls = []
        for agent_id, sh in zip(agents, shapes, strict=True):
            calls += [command("ZCARD", sh.timeline),
                      command("SMEMBERS", self._pinned_key(agent_id)),
                      command("ZCARD", sh.im_timeline)]
        state = self.memory.runner.run(Plan(calls, every_reply))
        # the timelines in slices of SCAN_SLICE entries: many short commands (one round
        # trip), never one that holds the server for a whole large timeline
        owners: list[int] = []
        slices = []
        for n, sh in enumerate(shapes):
            for start in range(0, int(state[3 * n]), SCAN_SLICE):
                owners.append(n)
                slices.append(command("ZRANGE", sh.timeline, start, start + SCAN_SLICE - 1,
                                      "WITHSCORES"))
        parts = self.memory.runner.run(Plan(slices, every_reply)) if slices else []
        timelines: list[list[tuple[Any, Any]]] = [[] for _ in agents]
        for n, part in zip(owners, parts, strict=True):
            timelines[n] += _pairs(part)
        ims: list[int] = []
        pins: list[set[str]] = []
        stms: list[list[tuple[str, float]]] = []
        for n in range(len(agents)):
            pinned = {_text(x) for x in state[3 * n + 1]}
            stms.append([(_text(m), float(s)) for m, s in timelines[n]
                         if _text(m) not in pinned])
            ims.append(int(state[3 * n + 2]))
            pins.append(pinned)
        # the actions each agent's rules need, read for all agents in one round trip
        wanted = [self._candidates(stm_ids, now_step) for stm_ids in stms]
        fetched = self.memory.runner.run(_gather([
            read_versions(self.memory, agent_id, ids)
            for agent_id, ids in zip(agents, wanted, strict=True)])) if any(wanted) else \
            [[] for _ in agents]
        leaving: list[tuple[str, list[tuple[Action, str]]]] = []
        for n, agent_id in enumerate(agents):
            read = [x for x in fetched[n] if x is not None]
            seen = {id(a): digest for a, digest in read}
            # timeline ids whose hash had already expired (left to integrity.repair)
            report.missing += len(fetched[n]) - len(read)
            leave = self._stm_leavers(stms[n], [a for a, _ in read], now_step, now)
            leaving.append((agent_id, [(a, seen[id(a)]) for a in leave]))
            ims[n] += len(leave)
        report.agents += len(agents)
        if report.dry_run:
            for (agent_id, going), im_count, pinned, stm in zip(leaving, ims, pins, timelines,
                                                                strict=True):
                if going:
                    report.moving[agent_id] = [str(a.action_id) for a, _ in going]
                report.to_im += len(going)
                in_im = len(pinned - {_text(m) for m, _ in stm})  # pins not in STM
                if p.im_capacity is not None:
                    report.evicted += max(0, im_count - in_im - p.im_capacity)
            return
        self._move_many(leaving, report)
        over = [(agent_id, sh, pinned) for (agent_id, _), sh, im_count, pinned
                in zip(leaving, shapes, ims, pins, strict=True)
                if p.im_capacity is not None and im_count > p.im_capacity]
        if over:
            self._evict_im(over, report)

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
        wire = self.layout.im_action.codec.wire
        fields = (wire("importance"), wire("simulation_id"))
        while over:  # rounds of at most PLAN_SLICE victims per agent
            plans = [single(script_call(EVICT_PLAN, [*sh.im_hash, sh.im_timeline,
                                                     self._pinned_key(agent_id), *fields,
                                                     p.im_capacity,
                                                     repr(float(p.importance_weight)),
                                                     PLAN_SLICE],
                                        route=sh.im_timeline),
                            lambda raw: [_text(x) for x in raw])
                     for agent_id, sh, _ in over]
            planned: list[list[str]] = self.memory.runner.run(_gather(plans))
            self._evict_round([(agent_id, sh, flat[0::2], flat[1::2]) for (agent_id, sh, _),
                               flat in zip(over, planned, strict=True) if flat], report)
            over = [o for o, flat in zip(over, planned, strict=True)
                    if len(flat) // 2 >= PLAN_SLICE]

    def _evict_round(self, victims: list[tuple[str, Shapes, list[str], list[str]]],
                     report: MaintainReport) -> None:
        if not victims:
            return
        if self.archive is not None:
            self._ensure_archived(victims)
        evictions = [single(script_call(EVICT_IM, [*sh.im_hash, sh.im_timeline,
                                                   self._pinned_key(agent_id),
                                                   *ids[start:start + SLICE]],
                                        route=sh.im_timeline), int)
                     for agent_id, sh, ids, _ in victims
                     for start in range(0, len(ids), SLICE)]
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
        interval = read(TierSettings, {"maintain_interval": interval},
                        env={}).maintain_interval or interval
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

        self._maintain_args = maintain_args
        self._thread = threading.Thread(target=run, name="agentmem-tiers", daemon=True)
        self._thread.start()

    def stop(self, *, final: bool = True) -> None:
        """Stop the runner (after its current round), then, when it was running and
        ``final`` is true, run :meth:`maintain` one last time (with the runner's
        arguments), so that what was written since its last round is within the policy
        too; raise the runner's kept error, else the last round's, if any."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if final:
                try:
                    self.maintain(**self._maintain_args)
                except AgentMemError as exc:
                    if self._error is None:
                        self._error = exc
        self.raise_error()

    def raise_error(self) -> None:
        err, self._error = self._error, None
        if err is not None:
            raise err
