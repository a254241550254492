"""Integrity on Redis Cluster: :func:`agentmem.integrity.check` and ``repair`` walk
every master (SCAN), check each agent in its slot and each simulation in its slot.
See ``docs/cluster.md`` for what it covers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agentmem.backends.failures import LINK_ERRORS, connection_failure
from agentmem.lua.cluster import AGENT_CHECK, SET_COUNTERS, SIM_CHECK, SIM_ORPHANS
from agentmem.lua.integrity import INDEXED_FIELDS, RETIRE
from agentmem.plans.keyspace import candidate_agents
from agentmem.plans.owners import raise_marks
from agentmem.plans.plan import Call, Plan, every_reply, script_call

if TYPE_CHECKING:
    from agentmem.backends.cluster import ClusterMemory

__all__ = ["ClusterWalk"]


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _candidates(action_id: str) -> list[str]:
    """The agents an id of the simulation-level indices may belong to, as the
    single-server scripts and ``SIM_FETCH`` try them."""
    return candidate_agents(action_id)


class ClusterWalk:
    """Integrity on a cluster: SCAN on every master, agent-level checks in each agent's
    slot, simulation-level checks in each simulation's slot: hashes missing from an
    index, index entries whose hash is gone (orphans: agent-level indices checked in
    the agent's slot; simulation-level ids looked up in their agents' slots) and the
    type counters (see ``docs/cluster.md``)."""

    def __init__(self, memory: ClusterMemory, report: Any, batch: int,
                 agent_ids: Iterable[str] | None, fix: bool) -> None:
        self.memory, self.report, self.batch, self.fix = memory, report, batch, fix
        self.mode = "fix" if fix else "check"
        self.agents = None if agent_ids is None else set(agent_ids)
        self.layout = memory.actions.layout
        self.p = {f: self.layout.plain(f) for f in self.layout.patterns}
        wire = self.layout.action.codec.wire  # the hash field names of the layout
        self.fields = [wire(name) for name in (*INDEXED_FIELDS, "stored_at")]
        self.type_field = wire("action_type")
        self.listed: dict[str, set[str]] = {}
        self.steps_seen: set[tuple[str, str]] = set()
        self.grids: dict[str, list[str]] = defaultdict(list)
        """The simulation-level grid keys found by the scan, per simulation."""
        self.retired: dict[tuple[str, str], str] = {}
        """(agent, id) of simulation-level orphans a fix removed -> their simulation, whose
        retired mark was raised (as ``agentmem.integrity``'s walk does)."""
        self.shrunk: set[str] = set()
        """Agents whose timeline or relative index lost orphans: their relative index is
        refilled from the timeline at the end (``integrity_relative``)."""

    def run(self) -> None:
        runner = self.memory.runner
        head = self.p["action"].split("{", 1)[0]
        sim_head = self.p["sim_actions"].split("{", 1)[0]
        sims: set[str] = set()
        for node in runner.primaries():  # simulation-level orphans and counters first
            try:
                for raw in runner.node_client(node).scan_iter(match=sim_head + "*",
                                                               count=self.batch):
                    self.report.keys_scanned += 1
                    parsed = self.layout.parse(_text(raw))
                    if parsed is not None and parsed[0].startswith("sim_"):
                        sims.add(parsed[1]["simulation_id"])
                        if parsed[0] == "sim_grid":
                            self.grids[parsed[1]["simulation_id"]].append(_text(raw))
            except LINK_ERRORS as exc:
                raise connection_failure(f"Redis Cluster node {node.name}", exc) from exc
        for sim in sorted(sims):
            self._sim_orphans(sim)
        for node in runner.primaries():
            client = runner.node_client(node)
            pending: list[tuple[str, str]] = []
            try:
                for raw in client.scan_iter(match=head + "*", count=self.batch):
                    self.report.keys_scanned += 1
                    key = _text(raw)
                    parsed = self.layout.parse(key)
                    if parsed is None:
                        continue
                    agent = parsed[1].get("agent_id", "")
                    if self.agents is not None and agent not in self.agents:
                        continue
                    if parsed[0] in _AGENT_INDICES:
                        self._agent_orphans(key, parsed[0], agent)
                    if parsed[0] != "action":
                        continue
                    pending.append((agent, parsed[1]["action_id"]))
                    if len(pending) >= self.batch:
                        self._actions(pending)
                        pending = []
            except LINK_ERRORS as exc:
                raise connection_failure(f"Redis Cluster node {node.name}", exc) from exc
            self._actions(pending)
        from agentmem.lua.integrity import RELATIVE

        size = getattr(self.memory.actions.spec.index("relative_index"), "cap", None) or 0
        for agent in sorted(self.shrunk):
            rel = self.layout.key("relative_index", agent_id=agent)
            runner.run(Plan((script_call(RELATIVE, [self.mode, rel, self.layout.key(
                "timeline", agent_id=agent), size], route=rel),), every_reply))

    def _actions(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        per_agent: dict[str, list[str]] = defaultdict(list)
        for agent, aid in pairs:
            per_agent[agent].append(aid)
        pats = [self.p[f] for f in ("action", "timeline", "types", "targets", "rewards",
                                    "grid")]
        cell = repr(self.memory.actions.grid_cell) if self.memory.actions.grids else "0"
        agents = list(per_agent)
        kind = self.memory.actions.families_kind
        calls = [script_call(AGENT_CHECK, [self.mode, *pats, cell, kind, *self.fields, a,
                                           *per_agent[a]],
                             route=self.layout.key("timeline", agent_id=a)) for a in agents]
        replies = self.memory.runner.run(Plan(calls, every_reply))
        sims: dict[str, list[tuple[str, str, str, str, str]]] = defaultdict(list)
        settle = self.memory.settle_seconds
        for agent, out in zip(agents, replies, strict=True):
            rows = [[_text(v) for v in out[i:i + 7]] for i in range(0, len(out), 7)]
            self.report.hashes_checked += len(rows)
            for aid, sim, typ, step, age, missing, code in rows:
                key = _fill(self.p["action"], {"agent_id": agent, "action_id": aid})
                for family in filter(None, missing.split(",")):
                    self.report.add("missing", family, [key])
                if float(age) >= settle:
                    sims[sim].append((aid, step, typ, key, code))
        if not sims:
            return
        names = list(sims)
        for sim in names:
            if sim not in self.listed:
                self.listed[sim] = self._list(sim)
        spats = [self.p[f] for f in ("sim_actions", "sim_step", "sim_steps", "sim_by_type",
                                     "sim_grid")]
        calls = []
        for sim in names:
            argv: list[Any] = [self.mode, *spats, sim]
            for aid, step, typ, _, code in sims[sim]:
                argv += (aid, step, typ, "1" if aid in self.listed[sim] else "0", code)
            calls.append(script_call(SIM_CHECK, argv,
                                     route=self.layout.key("sim_actions", simulation_id=sim)))
        replies = self.memory.runner.run(Plan(calls, every_reply))
        for sim, out in zip(names, replies, strict=True):
            keys = {aid: (step, typ, key) for aid, step, typ, key, _ in sims[sim]}
            for i in range(0, len(out), 2):
                aid, missing = _text(out[i]), _text(out[i + 1])
                step, typ, key = keys[aid]
                for family in missing.split(","):
                    if family == "sim_steps":
                        if (sim, step) in self.steps_seen:
                            continue
                        self.steps_seen.add((sim, step))
                        skey = _fill(self.p["sim_steps"], {"simulation_id": sim})
                        self.report.add("missing", family, [f"{skey} {step}"])
                    else:
                        self.report.add("missing", family, [key])
                    if family == "sim_actions":
                        ck = _fill(self.p["sim_by_type"], {"simulation_id": sim})
                        self.report.add("counters", "sim_by_type", [f"{ck} {typ}: +1"])

    def _agent_orphans(self, key: str, family: str, agent: str) -> None:
        """Entries of one agent-level index whose hash is gone (the single-server
        ORPHANS script, run in the agent's slot)."""
        from agentmem.lua import integrity as lua

        hfam = "im_action" if family == "im_timeline" else "action"
        pre, suf = _fill(self.p[hfam], {"agent_id": agent, "action_id": "\x02"}).split("\x02")
        kind = self.memory.actions.families_kind if family in ("types", "targets") else "z"
        timeline = family == "timeline" and self.fix
        retired = self.layout.key("retired", agent_id=agent)
        cursor = "0"
        while True:
            # a timeline's orphans are found (read only), then removed by RETIRE, which
            # raises the agent's retired mark first (docs/integrity.md)
            call = script_call(lua.ORPHANS, ["check" if timeline else self.mode, key, cursor,
                                             self.batch, kind, "a", pre, suf, "", 0],
                               route=key)
            out = self.memory.runner.run(Plan((call,), every_reply))[0]
            cursor = _text(out[0])
            found = [_text(m) for m in out[1:]]
            self.report.add("orphans", family, [f"{key} {m}" for m in found])
            if found and self.fix and family in ("timeline", "relative_index"):
                self.shrunk.add(agent)
            if timeline and found:
                pairs = [x for m in found for x in (m, self.retired.get((agent, m), ""))]
                self.memory.runner.run(Plan((script_call(
                    RETIRE, [key, pre, suf, retired, *pairs], route=key),), every_reply))
            if cursor == "0":
                return

    def _raise_marks(self, sim: str, ids: Iterable[tuple[str, str]]) -> None:
        """The retired marks of the agents of simulation-level orphans (id, step of
        their key or '') raised to their steps, before a fix removes the entries."""
        marked = self.memory.runner.run(raise_marks(
            sim, list(ids), self.agents,
            lambda agent: self.layout.key("timeline", agent_id=agent),
            lambda agent: self.layout.key("retired", agent_id=agent)))
        self.retired.update(dict.fromkeys(marked, sim))

    def _live(self, ids: Iterable[str]) -> dict[str, str]:
        """The ids whose STM hash exists, with their action type (looked up in each
        candidate agent's slot, ``batch`` lookups per round trip)."""
        todo = [(aid, agent) for aid in ids for agent in _candidates(aid)]
        found: dict[str, str] = {}
        for start in range(0, len(todo), self.batch):
            part = todo[start:start + self.batch]
            calls = [Call(("HGET", _fill(self.p["action"], {"agent_id": a, "action_id": i}),
                           self.type_field)) for i, a in part]
            for (aid, _), typ in zip(part, self.memory.runner.run(Plan(calls, every_reply)),
                                     strict=True):
                if typ is not None and aid not in found:
                    found[aid] = _text(typ)
        return found

    def _sim_orphans(self, sim: str) -> None:
        """A simulation's list, step sets and steps zset: entries whose hash is gone
        (removed by a fix), then its type counters recounted from the list."""
        runner = self.memory.runner
        lk = self.layout.key("sim_actions", simulation_id=sim)
        zk = self.layout.key("sim_steps", simulation_id=sim)
        ck = self.layout.key("sim_by_type", simulation_id=sim)
        ids = []
        start = 0
        while True:
            part = runner.run(Plan((Call(("LRANGE", lk, start, start + self.batch - 1)),),
                                   every_reply))[0]
            ids += [_text(x) for x in part]
            if len(part) < self.batch:
                break
            start += self.batch
        steps = [_text(x) for x in runner.run(Plan((Call(("ZRANGE", zk, 0, -1)),),
                                                   every_reply))[0]]
        skeys = [self.layout.key("sim_step", simulation_id=sim, step_number=int(st))
                 for st in steps]
        members = runner.run(Plan([Call(("SMEMBERS", k)) for k in skeys], every_reply)) \
            if skeys else []
        step_ids = [[_text(m) for m in ms] for ms in members]
        gkeys = sorted(self.grids.get(sim, ()))
        grid_ids = [[_text(m) for m in ms] for ms in runner.run(
            Plan([Call(("ZRANGE", k, 0, -1)) for k in gkeys], every_reply))] if gkeys else []
        live = self._live(set(ids).union(*map(set, step_ids), *map(set, grid_ids)))

        def orphan(aid: str) -> bool:
            if aid in live:
                return False
            return self.agents is None or any(a in self.agents for a in _candidates(aid))

        gone = [aid for aid in ids if orphan(aid)]
        self.report.add("orphans", "sim_actions", [f"{lk} {aid}" for aid in gone])
        if self.fix:
            self._raise_marks(sim, [(aid, "") for aid in gone] + [
                (m, st) for st, ms in zip(steps, step_ids, strict=True) for m in ms
                if orphan(m)])
        argv: list[Any] = [self.mode, lk, zk, len(gone), *gone]
        for st, sk, ms in zip(steps, skeys, step_ids, strict=True):
            dead = [m for m in ms if orphan(m)]
            self.report.add("orphans", "sim_step", [f"{sk} {m}" for m in dead])
            if self.agents is None or dead:
                argv += [st, sk, len(dead), *dead]
        empty = runner.run(Plan((script_call(SIM_ORPHANS, argv, route=lk),),
                                every_reply))[0]
        for gk, ms in zip(gkeys, grid_ids, strict=True):
            dead = [m for m in ms if orphan(m)]
            self.report.add("orphans", "sim_grid", [f"{gk} {m}" for m in dead])
            if self.fix and dead:
                runner.run(Plan((Call(("ZREM", gk, *dead)),), every_reply))
        if self.agents is not None:
            return  # the steps zset and the counters span agents: not checked
        self.report.add("orphans", "sim_steps", [f"{zk} {_text(st)}" for st in empty])
        want: dict[str, int] = defaultdict(int)
        for aid in ids:
            if aid in live:
                want[live[aid]] += 1
        length = len(ids) - (len(gone) if self.fix else 0)
        have_raw = runner.run(Plan((Call(("HGETALL", ck)),), every_reply))[0]
        have = {_text(k): int(v) for k, v in _hash_items(have_raw)}
        wrong = sorted(t for t in set(have) | set(want) if have.get(t, 0) != want.get(t, 0))
        if not wrong:
            return
        self.report.add("counters", "sim_by_type",
                        [f"{ck} {t}: {have.get(t, 0)} -> {want.get(t, 0)}" for t in wrong])
        if self.fix:
            pairs = [x for t, n in sorted(want.items()) if n > 0 for x in (t, n)]
            runner.run(Plan((script_call(SET_COUNTERS, [lk, ck, length, *pairs], route=lk),),
                            every_reply))

    def _list(self, sim: str) -> set[str]:
        """The ids of a simulation's list, read a slice at a time."""
        key = self.layout.key("sim_actions", simulation_id=sim)
        seen: set[str] = set()
        start = 0
        client = self.memory.runner
        while True:
            part = client.run(Plan((Call(("LRANGE", key, start, start + self.batch - 1)),),
                                   every_reply))[0]
            seen.update(_text(x) for x in part)
            if len(part) < self.batch:
                return seen
            start += self.batch


_AGENT_INDICES = frozenset(("timeline", "relative_index", "rewards", "types", "targets",
                            "grid", "im_timeline"))


def _hash_items(raw: Any) -> list[tuple[Any, Any]]:
    """HGETALL's reply as pairs: a dict (parsed) or a flat list (raw RESP2)."""
    if isinstance(raw, dict):
        return list(raw.items())
    return list(zip(raw[0::2], raw[1::2], strict=True))


def _fill(pattern: str, values: dict[str, str]) -> str:
    out = pattern
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out
