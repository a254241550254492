"""Check and repair the indices of the action layout: orphans, missing entries, counters.

- :func:`check` reports index entries whose hash is gone (*orphans*), hashes missing
  from an index they belong in (*missing*) and ``simulation:{sim}:actions:by_type``
  fields that disagree with the actions stored (*counters*).
- :func:`repair` fixes all of them and reports what it fixed.

Keys are found with ``SCAN MATCH ... COUNT batch``; big keys are read a slice at a
time (``ZSCAN``/``SSCAN``/``LRANGE`` ranges inside one small script per slice), and
every removal or re-add is decided inside that script, so writers may run meanwhile.
See ``docs/integrity.md``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentmem.backends.masters import scan_keys
from agentmem.errors import InvalidInput
from agentmem.lua import integrity as lua
from agentmem.lua.scripts import Script
from agentmem.plans.keyspace import check_part
from agentmem.plans.owners import raise_marks
from agentmem.plans.plan import Arg, command, script_call, single

if TYPE_CHECKING:
    from agentmem.backends.redis import Memory

__all__ = ["IntegrityReport", "check", "repair"]

DEFAULT_BATCH = 1000
SAMPLES = 5
"""Keys/ids kept per family in a report, as examples."""
EXTENSIONS = ("grid", "sim_grid")
"""agentmem's own index families, which the specification's code never writes: a hash
missing from them is data written by other code (``repair`` adds the entries)."""
CONSISTENT_COUNT_MAX = 50_000
"""Simulations with at most this many list entries get their counters counted by one script."""


@dataclass
class IntegrityReport:
    """What :func:`check` found, or what :func:`repair` fixed.

    ``orphans`` and ``missing`` map an index family (``timeline``, ``types``,
    ``sim_actions``, ``im_timeline``, ...) to a number of index entries; ``counters``
    maps ``sim_by_type`` to the number of wrong counter fields. Only families with
    something to report appear. ``samples`` holds up to five examples per
    ``"orphans.<family>"``, ``"missing.<family>"`` or ``"counters.sim_by_type"``.
    """

    repaired: bool = False
    orphans: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    keys_scanned: int = 0
    hashes_checked: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing was found (for a repair: nothing needed fixing)."""
        return self.total == 0

    @property
    def unindexed(self) -> int:
        """Entries missing from agentmem's own indices only (:data:`EXTENSIONS`, the
        radius-search grids): what data written by the specification's code lacks."""
        return sum(self.missing.get(f, 0) for f in EXTENSIONS)

    @property
    def spec_clean(self) -> bool:
        """True when nothing is wrong by the specification's layout: every finding, if
        any, is an entry missing from agentmem's own grids (:attr:`unindexed`)."""
        return self.total == self.unindexed

    @property
    def total(self) -> int:
        return sum(self.orphans.values()) + sum(self.missing.values()) + sum(
            self.counters.values())

    def add(self, kind: str, family: str, items: Sequence[str]) -> None:
        if not items:
            return
        counts: dict[str, int] = getattr(self, kind)
        counts[family] = counts.get(family, 0) + len(items)
        sample = self.samples.setdefault(f"{kind}.{family}", [])
        sample.extend(items[:max(0, SAMPLES - len(sample))])

    def __str__(self) -> str:
        verb = "repair fixed" if self.repaired else "check found"
        lines = [f"integrity {verb} {self.total} problem(s) "
                 f"({self.keys_scanned} keys scanned, {self.hashes_checked} hashes checked)"]
        for kind in ("orphans", "missing", "counters"):
            counts: dict[str, int] = getattr(self, kind)
            for family, n in sorted(counts.items()):
                shown = self.samples.get(f"{kind}.{family}", [])
                more = f" (truncated: {len(shown)} of {n} shown)" if n > len(shown) else ""
                lines.append(f"  {kind:<8} {family:<14} {n:>8}  e.g. {', '.join(shown)}{more}")
        if self.clean:
            lines.append("  clean")
        return "\n".join(lines)


def check(memory: Memory, *, batch: int = DEFAULT_BATCH,
          agent_ids: Iterable[str] | None = None,
          progress: Callable[[int], None] | None = None) -> IntegrityReport:
    """Report orphans, missing index entries and wrong counters; change nothing.

    ``batch`` bounds every step: SCAN's COUNT, the members read per ZSCAN/SSCAN or
    list range, the hashes checked per script call. ``agent_ids`` limits the check
    to those agents' keys and to their ids in the simulation-level indices; the
    steps zsets and the counters (which span agents) are then not checked.
    ``progress(keys)`` is called with the keys scanned so far, every ``batch`` keys (one
    server; a cluster's walk does not call it).
    """
    memory.actions.grid_cell_check()
    return _cluster(memory, batch, agent_ids, fix=False) or \
        _Walk(memory, batch, agent_ids, fix=False, progress=progress).run()


def repair(memory: Memory, *, batch: int = DEFAULT_BATCH,
           agent_ids: Iterable[str] | None = None,
           progress: Callable[[int], None] | None = None) -> IntegrityReport:
    """Fix what :func:`check` finds; return the report of what was fixed.

    Orphans are removed, missing entries re-added from the hash's own fields
    (timeline scored by ``step_number``, rewards by ``reward``; the relative index
    only loses orphans), counters rewritten to the true counts (0: field removed),
    grid entries scored with the store's ``grid_cell`` (a store whose cell differs from
    the one the server records in ``agentmem:grid_cell`` is refused with
    :class:`~agentmem.errors.LayoutError`, as by :func:`check`; when it records none
    and the repair wrote grid entries, it records the store's).
    """
    memory.actions.grid_cell_check()
    report = _cluster(memory, batch, agent_ids, fix=True) or \
        _Walk(memory, batch, agent_ids, fix=True, progress=progress).run()
    if report.missing.get("grid") or report.missing.get("sim_grid"):
        memory.actions.grid_cell_check(record=True)
    return report


def _cluster(memory: Any, batch: int, agent_ids: Iterable[str] | None, *,
             fix: bool) -> IntegrityReport | None:
    """On a Redis Cluster (``agentmem.backends.cluster.ClusterMemory``), its own walk,
    slot by slot (see ``docs/cluster.md``); None on one server."""
    walk = getattr(memory, "cluster_integrity", None)
    if walk is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidInput(f"batch must be a positive int, got {batch!r}")
    report = IntegrityReport(repaired=fix)
    walk(report, batch=batch, agent_ids=agent_ids, fix=fix)
    return report


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class _Walk:
    def __init__(self, memory: Memory, batch: int, agent_ids: Iterable[str] | None,
                 *, fix: bool, progress: Callable[[int], None] | None = None) -> None:
        self.progress = progress
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InvalidInput(f"batch must be a positive int, got {batch!r}")
        self.agents: list[str] | None = None
        if agent_ids is not None:
            if isinstance(agent_ids, (str, bytes)):
                raise InvalidInput("agent_ids must be an iterable of agent ids, not one string")
            self.agents = sorted(set(agent_ids))
            for a in self.agents:
                check_part("agent_id", a)
        self.memory, self.batch, self.fix = memory, batch, fix
        self.mode = "fix" if fix else "check"
        self.report = IntegrityReport(repaired=fix)
        lay = memory.actions.layout
        # literal braces written once ({name} is the only brace-word), as the scripts read them
        self.p = {family: lay.plain(family) for family in lay.patterns}
        self.families = _matchers(self.p)
        shape = self.p["action"].replace("{agent_id}", "\x01").replace("{action_id}", "\x02")
        prefix, rest = shape.split("\x01", 1)
        middle, suffix = rest.split("\x02", 1)
        self.sim_parts: list[Arg] = [prefix, middle, suffix]
        wire = lay.action.codec.wire  # the hash field names of the layout (short on 3)
        self.fields: list[Arg] = [wire(name) for name in lua.INDEXED_FIELDS]
        self.count_fields: list[Arg] = [wire("simulation_id"), wire("action_type")]
        self.im_step = lay.im_action.codec.wire("step_number")
        self.filter: list[Arg] = [len(self.agents or ()), *(self.agents or ())]
        self.list_ids: dict[str, set[str]] = defaultdict(set)
        self.sims: set[str] = set()
        self.unlisted: dict[str, Counter[str]] = defaultdict(Counter)
        self.steps_seen: set[tuple[str, str]] = set()
        self.retired: dict[tuple[str, str], str] = {}
        """(agent, id) of the simulation-level orphans a fix removed -> their simulation,
        whose retired mark was raised to the id's step (the timeline orphan of the id
        then needs no other mark, see :meth:`_timeline`)."""

    # -- plumbing -----------------------------------------------------------

    def _call(self, script: Script, *argv: Arg) -> Any:
        return self.memory.runner.run(single(script_call(script, [self.mode, *argv]),
                                             lambda reply: reply))

    def _scan(self, match: str) -> Iterator[tuple[str, dict[str, str]]]:
        for raw in scan_keys(self.memory, match, self.batch):
            self.report.keys_scanned += 1
            if self.progress is not None and self.report.keys_scanned % self.batch == 0:
                self.progress(self.report.keys_scanned)
            try:
                key = raw.decode()
            except UnicodeDecodeError:
                continue
            for family, rx in self.families:
                m = rx.match(key)
                if m:
                    yield key, {"family": family, **m.groupdict()}
                    break

    def _scan_members(self, script: Script, key: str, family: str, *args: Arg,
                      mode: str | None = None) -> Iterator[list[str]]:
        """The orphans of ``key``, one SCAN step's at a time (reported as they come)."""
        cursor: Arg = "0"
        while True:
            out = self.memory.runner.run(single(script_call(
                script, [mode or self.mode, key, cursor, self.batch, *args]),
                lambda reply: reply))
            cursor = out[0].decode()
            found = [m.decode() for m in out[1:]]
            self.report.add("orphans", family, [f"{key} {m}" for m in found])
            yield found
            if cursor == "0":
                return

    def _raise_marks(self, sim: str, ids: Iterable[str], step: str = "") -> None:
        """Before an id leaves the agent's timeline (:meth:`_timeline`), its agent's
        retired mark of ``sim`` goes up to its step: the id is never given again
        (``docs/keyspace.md``). ``ids``: simulation-level orphans a fix removed, their
        agents and steps read from the ids (``step``: the step of their key, if any)."""
        marked = self.memory.runner.run(raise_marks(
            sim, [(aid, step) for aid in ids], self.agents,
            lambda agent: _fill(self.p["timeline"], {"agent_id": agent}),
            lambda agent: _fill(self.p["retired"], {"agent_id": agent})))
        self.retired.update(dict.fromkeys(marked, sim))

    def _timeline(self, key: str, agent: str, pre: str, suf: str) -> bool:
        """An agent's timeline orphans: found (read only), then each removed with its
        retired mark raised first (:data:`~agentmem.lua.integrity.RETIRE`): the mark of
        its simulation when a simulation-level orphan named it, else ``:any``, a mark
        of every simulation (no other key says which simulation the id was given in)."""
        retired = _fill(self.p["retired"], {"agent_id": agent})
        removed = False
        for found in self._scan_members(lua.ORPHANS, key, "timeline", "z", "a", pre, suf, "",
                                        0, mode="check"):
            pairs = [x for aid in found for x in (aid, self.retired.get((agent, aid), ""))]
            if pairs:
                removed = bool(self.memory.runner.run(single(script_call(
                    lua.RETIRE, [key, pre, suf, retired, *pairs]), lambda reply: reply))
                    ) or removed
        return removed

    # -- the walk -----------------------------------------------------------

    def run(self) -> IntegrityReport:
        self._simulations()
        self._agents()
        if self.agents is None:
            for sim in sorted(self.sims):
                self._steps(sim)
                self._counters(sim)
        return self.report

    def _simulations(self) -> None:
        """Orphans of the lists and step sets; a snapshot of each list's live ids."""
        head = self.p["sim_actions"].split("{", 1)[0]
        for key, g in self._scan(head + "*"):
            family, sim = g["family"], g.get("simulation_id")
            if sim is None:
                continue
            self.sims.add(sim)
            if family == "sim_actions":
                self._list(key, sim)
            elif family in ("sim_step", "sim_grid"):
                kind = "s" if family == "sim_step" else "z"
                for found in self._scan_members(lua.ORPHANS, key, family, kind, "s",
                                                *self.sim_parts, *self.filter):
                    if self.fix:
                        self._raise_marks(sim, found, g.get("step_number", ""))

    def _list(self, key: str, sim: str) -> None:
        start = 0
        while True:
            n, orphans, live = self._call(lua.LIST, key, start, self.batch, *self.sim_parts,
                                          *self.filter)
            gone = [m.decode() for m in orphans]
            self.report.add("orphans", "sim_actions", [f"{key} {m}" for m in gone])
            if self.fix:
                self._raise_marks(sim, gone)
            self.list_ids[sim].update(m.decode() for m in live)
            if n < self.batch:
                return
            start += n - (len(orphans) if self.fix else 0)

    def _agents(self) -> None:
        head, sep = self.p["action"].split("{agent_id}", 1)
        matches = [head + "*"] if self.agents is None else [
            f"{head}{_glob_escape(a)}{sep[0]}*" for a in self.agents]
        actions: list[tuple[str, str]] = []
        ims: list[tuple[str, str]] = []
        shrunk: set[str] = set()
        for match in matches:
            for key, g in self._scan(match):
                family, agent = g["family"], g.get("agent_id", "")
                if family == "action":
                    actions.append((agent, g["action_id"]))
                    if len(actions) >= self.batch:
                        self._actions(actions)
                        actions = []
                elif family == "im_action":
                    ims.append((agent, g["action_id"]))
                    if len(ims) >= self.batch:
                        self._ims(ims)
                        ims = []
                elif family in ("timeline", "relative_index", "rewards", "types", "targets",
                                "grid", "im_timeline"):
                    hfam = "im_action" if family == "im_timeline" else "action"
                    pre, suf = _fill(self.p[hfam], {"agent_id": agent, "action_id": "\x02"}
                                     ).split("\x02")
                    if family == "timeline" and self.fix:
                        if self._timeline(key, agent, pre, suf):
                            shrunk.add(agent)
                        continue
                    kind = self.memory.actions.families_kind if family in (
                        "types", "targets") else "z"
                    for found in self._scan_members(lua.ORPHANS, key, family, kind, "a", pre,
                                                    suf, "", 0):
                        if found and family == "relative_index" and self.fix:
                            shrunk.add(agent)
        self._actions(actions)
        self._ims(ims)
        # the relative index of an agent whose timeline or relative index lost orphans
        # gets the timeline's next entries back (docs/keyspace.md: the newest N)
        size = getattr(self.memory.actions.spec.index("relative_index"), "cap", None) or 0
        for agent in sorted(shrunk):
            self._call(lua.RELATIVE, _fill(self.p["relative_index"], {"agent_id": agent}),
                       _fill(self.p["timeline"], {"agent_id": agent}), size)

    def _actions(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        pats = [self.p[f] for f in ("action", "timeline", "types", "targets", "rewards",
                                    "sim_step", "sim_steps", "grid", "sim_grid")]
        cell = repr(self.memory.actions.grid_cell) if self.memory.actions.grids else "0"
        kind = self.memory.actions.families_kind
        out = self._call(lua.ACTIONS, *pats, cell, kind, *self.fields, *_flat(pairs))
        rows = [[v.decode() for v in out[i:i + 6]] for i in range(0, len(out), 6)]
        self.report.hashes_checked += len(rows)
        unlisted: list[tuple[str, str]] = []
        kinds: dict[str, tuple[str, str]] = {}
        for action_id, agent, sim, action_type, step, missing in rows:
            self.sims.add(sim)
            for family in filter(None, missing.split(",")):
                if family == "sim_steps":  # one entry per step, however many actions lack it
                    if (sim, step) not in self.steps_seen:
                        self.steps_seen.add((sim, step))
                        key = _fill(self.p[family], {"simulation_id": sim})
                        self.report.add("missing", family, [f"{key} {step}"])
                else:
                    self.report.add("missing", family,
                                    [self._hash_key("action", agent, action_id)])
            if action_id not in self.list_ids.get(sim, ()):
                unlisted.append((agent, action_id))
                kinds[action_id] = (sim, action_type)
        if unlisted:
            gone = self._call(lua.LISTED, self.p["action"], self.p["sim_actions"],
                              self.count_fields[0], *_flat(unlisted))
            pairs = _pairs(gone)
            self.report.add("missing", "sim_actions",
                            [self._hash_key("action", a, i) for a, i in pairs])
            if not self.fix:
                for _, action_id in pairs:
                    sim, action_type = kinds[action_id]
                    self.unlisted[sim][action_type] += 1

    def _ims(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        out = self._call(lua.IM, self.p["im_action"], self.p["im_timeline"], self.im_step,
                         *_flat(pairs))
        self.report.hashes_checked += len(pairs)
        self.report.add("missing", "im_timeline",
                        [self._hash_key("im_action", a, i) for a, i in _pairs(out)])

    def _hash_key(self, family: str, agent_id: str, action_id: str) -> str:
        return _fill(self.p[family], {"agent_id": agent_id, "action_id": action_id})

    def _steps(self, sim: str) -> None:
        key = _fill(self.p["sim_steps"], {"simulation_id": sim})
        pre, suf = _fill(self.p["sim_step"], {"simulation_id": sim, "step_number": "\x02"}
                         ).split("\x02")
        for _ in self._scan_members(lua.STEPS, key, "sim_steps", pre, suf, *self.sim_parts):
            pass

    def _counters(self, sim: str) -> None:
        lk = _fill(self.p["sim_actions"], {"simulation_id": sim})
        ck = _fill(self.p["sim_by_type"], {"simulation_id": sim})
        size = self.memory.runner.run(single(command("LLEN", lk), int))
        counts = Counter(self.unlisted.get(sim, {}))
        start = 0
        if size > CONSISTENT_COUNT_MAX:  # too big for one script: sum slices (see docs)
            for start in range(0, size, self.batch):
                out = self.memory.runner.run(single(script_call(lua.COUNTS, [
                    "count", lk, start, start + self.batch - 1, sim, ck, *self.sim_parts,
                    *self.count_fields]),
                    lambda reply: reply))
                for i in range(0, len(out), 2):
                    counts[out[i].decode()] += int(out[i + 1])
            start = size
        extra: list[Arg] = [x for t, n in counts.items() if n for x in (t, n)]
        out = self._call(lua.COUNTS, lk, start, -1, sim, ck, *self.sim_parts,
                         *self.count_fields, *extra)
        rows = [out[i:i + 3] for i in range(0, len(out), 3)]
        self.report.add("counters", "sim_by_type", [
            f"{ck} {t.decode()}: {v.decode() or 'absent'} -> {n.decode()}" for t, v, n in rows])


def _fill(pattern: str, values: dict[str, str]) -> str:
    """Render a plain pattern as the scripts' ``render`` does: each ``{name}`` replaced."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], pattern)


def _pairs(flat: list[bytes]) -> list[tuple[str, str]]:
    return [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]


def _flat(pairs: Iterable[tuple[str, str]]) -> list[Arg]:
    return [x for pair in pairs for x in pair]


def _matchers(patterns: dict[str, str]) -> list[tuple[str, re.Pattern[str]]]:
    """A regex per key family, most literal first (``...:timeline`` before ``...:{id}``)."""
    out = []
    for family, pattern in patterns.items():
        parts = re.split(r"\{(\w+)\}", pattern)
        rx = "".join(re.escape(p) if i % 2 == 0 else
                     (rf"(?P<{p}>\d+)" if p == "step_number" else rf"(?P<{p}>[^:]+)")
                     for i, p in enumerate(parts))
        literal = sum(len(p) for p in parts[::2])
        out.append((len(parts) // 2, -literal, family, re.compile(rx + r"\Z")))
    out.sort(key=lambda row: row[:3])
    return [(family, rx) for _, _, family, rx in out]
