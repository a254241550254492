"""Ids for the life of the data when Redis lost its data (docs/keyspace.md).

The write script never generates an id at or below an agent's retired mark for a
simulation (:class:`~agentmem.model.schema.Retired`); tier transitions raise the marks.
A Redis that restarted empty has no marks, while the archive still holds the ids
given before. So a dual writer that opens a Redis without the marker key
``agentmem:ids`` first raises every (agent, simulation) mark to the highest step
the archive holds, and each agent's ``.r`` counter to the highest suffix archived,
then sets the marker (after a recovery, counting its buffer as archived; the marker
only if Redis kept the marks: :func:`seed_retired`). Seeding twice, or by two writers
at once, only raises marks to the same values. On a Redis Cluster each master can
lose its data on its own, so there is one marker per master, on that master
(``agentmem:ids:{<tag>}``, the tag chosen for a slot it serves): seeding runs when
any master lacks its marker.

:func:`held` and :func:`held_in_im` tell which of a list of (agent, id) pairs short-term
or intermediate memory holds, in one round trip: the replay of a journal, a partly
refused write and ``load_from_sql`` ask it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from agentmem.backends import sqlreads
from agentmem.backends.redis import Memory
from agentmem.backends.restarts import server_run_id
from agentmem.backends.sql import Archive
from agentmem.errors import Unavailable
from agentmem.lua.dualwrite import (
    OUTBOX_UNLOCK,
    RETIRED_SEED,
    RETIRED_SEEDED,
    RETIRED_SEEDING,
)
from agentmem.model.records import Action, IMAction
from agentmem.plans.plan import Plan, command, every_reply, script_call
from agentmem.repository.batch import Batch

__all__ = ["IDS_KEY", "Seeded", "eviction_policy", "held", "held_in_im", "not_held", "seed",
           "seed_retired", "watch_restarts"]

T = TypeVar("T", Action, IMAction)
Key = tuple[str, str]
"""(agent_id, action_id): what Redis keeps unique."""

IDS_KEY = "agentmem:ids"
"""Present once this Redis's retired marks hold what the archive knows (no TTL)."""


log = logging.getLogger("agentmem.dualwrite")
_WARNED: list[bool] = []  # the INFO warning, once per process

SEED_ATTEMPTS = 5
"""How many times a seeding starts again when Redis lost its marks while it ran."""

SEED_WAIT = 2.0
"""Seconds a seeding on a cluster waits, looking again every 10 ms, while another
seeding finishes master by master: some masters hold a seeding's sentinel and others
none. That seeding sets each master's marker (and drops its sentinel) in turn, so a
look meanwhile sees some markers set or replaced and others not yet; seeding then
(or taking the markers seen) would leave this writer with markers that change a moment
later, and one of the two writers' restart guards would take that for a loss and seed
again. Counted from the first look that finds such a state; a sentinel still there
after this long is joined (its writer may have died). A sentinel on every master (a
seeding still raising the marks) is joined at once."""

_FINISHING = object()
""":func:`_seed_once`'s: another seeding is setting its markers; look again."""


@dataclass(frozen=True)
class Seeded:
    """What a seeding left (:func:`seed`)."""

    agents: int
    """Agents whose marks the archive raised (0: the marker was there)."""
    tokens: tuple[bytes, ...]
    """The markers' tokens, as the seeding set or found them (one per master)."""
    run_id: bytes | None
    """One server: its ``run_id`` when the seeding started (a restart changes it)."""


def seed_retired(memory: Memory, archive: Archive, holds: Iterable[Action] = ()) -> int:
    """:func:`seed`; returns the number of agents seeded (0: the marker was there)."""
    return seed(memory, archive, holds).agents


def seed(memory: Memory, archive: Archive,
         holds: Iterable[Action] | Callable[[], Iterable[Action]] = (),
         known: tuple[bytes, ...] | None = None) -> Seeded:
    """Seed the retired marks of ``memory`` from ``archive`` unless done already on this
    Redis. ``holds`` (actions Redis acknowledged that it lacks now and the archive lacks
    yet: a dual writer's buffer after Redis came back empty) raise the marks too, even
    when another writer seeded before (the marker there): that one did not know them.

    The marker is set only if Redis kept the marks: a sentinel is set before the first
    mark (or joined: a seeding already running), and the marker is set in one script
    with the sentinel checked (``retired_seeded.lua``); a restart in between takes the
    sentinel too, and the seeding starts again (up to :data:`SEED_ATTEMPTS` times).

    ``holds`` may be a callable (a dual writer's buffer less what Redis holds): it is then
    called by each attempt once the sentinel is set (or the marker found), so that what
    Redis loses after it is read takes the sentinel (or the marker) too and is noticed;
    read before, an action Redis held then and lost before the sentinel was set would be
    in neither ``holds`` nor Redis, and its id given again.

    ``known``: the markers' tokens of the caller's last seeding. When the marker is there
    with other tokens, another writer seeded since (after Redis lost the marks), from the
    archive as it was then: what the caller archived after that is neither in those
    marks, nor in its buffer, nor in Redis, so the archive's marks are raised again."""
    fixed = () if callable(holds) else list(holds)
    get: Callable[[], Iterable[Action]] = holds if callable(holds) else (lambda: fixed)
    waits_until: float | None = None  # (from the first look that finds one finishing)
    attempts = 0
    while attempts < SEED_ATTEMPTS:
        patient = waits_until is None or time.monotonic() < waits_until
        out = _seed_once(memory, archive, get, known, patient)
        if out is _FINISHING:
            if waits_until is None:
                waits_until = time.monotonic() + SEED_WAIT
            time.sleep(0.01)
        elif isinstance(out, Seeded):
            return out
        else:
            attempts += 1
    raise Unavailable(f"Redis lost the retired marks {SEED_ATTEMPTS} times while they "
                      "were seeded")


def _marks_of(actions: Iterable[Action]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """:func:`sqlreads.retired_marks` of ``actions``: the highest step per (agent,
    simulation), the highest ``.r<n>`` suffix per agent."""
    marks: dict[tuple[str, str], int] = {}
    seqs: dict[str, int] = {}
    for a in actions:
        key = (a.agent_id, a.simulation_id)
        marks[key] = max(marks.get(key, a.step_number), a.step_number)
        aid = str(a.action_id)
        if ".r" in aid and (tail := aid.rsplit(".r", 1)[1]).isdigit():
            seqs[a.agent_id] = max(seqs.get(a.agent_id, 0), int(tail))
    return marks, seqs


def _seed_once(memory: Memory, archive: Archive, holds: Callable[[], Iterable[Action]],
               known: tuple[bytes, ...] | None, patient: bool) -> Seeded | object | None:
    """One seeding; None when Redis lost what it wrote before the marker could be set;
    with ``patient``, :data:`_FINISHING` when another seeding is setting its markers
    (:data:`SEED_WAIT`)."""
    run = memory.runner.run
    markers = _markers(memory)
    look = _look(memory, markers, patient)
    if look is _FINISHING:
        return _FINISHING
    found, run_id = cast(tuple[list[bytes | None], bytes | None], look)
    if all(t is not None for t in found):
        held_marks, held_seqs = _marks_of(holds())  # lost after: the marker goes too
        if known is not None and tuple(found) != known:  # seeded by another since
            _merge(held_marks, held_seqs, *sqlreads.retired_marks(archive))
        if held_marks or held_seqs:
            _raise_marks(memory, held_marks, held_seqs)
        return Seeded(0, tuple(t for t in found if t is not None), run_id)
    # the sentinel: this seeding's token, or that of a seeding already running (joined:
    # either may set the marker once it wrote every mark; the other then finds it); none
    # taken where a marker is no longer what the look above saw (retired_seeding.lua: a
    # seeding finished since, on that master; the next attempt looks again)
    mine = secrets.token_hex(8)
    took = run(Plan(tuple(script_call(RETIRED_SEEDING, (mine, seen or b""),
                                      (k + ":seeding", k))
                          for k, seen in zip(markers, found, strict=True)), every_reply))
    if not all(int(free) for free, _ in took):
        # (a cluster, a master's marker changed: the sentinels taken on the others are
        # given back, if still this seeding's, and the next attempt looks again)
        mine_taken = [k for k, (free, t) in zip(markers, took, strict=True)
                      if int(free) and t is None]
        if mine_taken:  # (OUTBOX_UNLOCK: delete the key if it still holds the token)
            run(Plan(tuple(script_call(OUTBOX_UNLOCK, (mine,), (k + ":seeding",))
                           for k in mine_taken), every_reply))
        return None
    tokens = [mine if t is None else (t.decode() if isinstance(t, bytes) else str(t))
              for _, t in took]
    marks, seqs = _marks_of(holds())  # lost after: the sentinel goes too
    _merge(marks, seqs, *sqlreads.retired_marks(archive))
    n = _raise_marks(memory, marks, seqs)
    done = run(Plan(tuple(script_call(RETIRED_SEEDED, (token,), (k + ":seeding", k))
                          for k, token in zip(markers, tokens, strict=True)), every_reply))
    if not all(int(x) == 1 for x in done):
        return None
    return Seeded(n, tuple(t.encode() for t in tokens), run_id)


def _merge(marks: dict[tuple[str, str], int], seqs: dict[str, int],
           more_marks: dict[tuple[str, str], int], more_seqs: dict[str, int]) -> None:
    """Raise ``marks`` and ``seqs`` to at least ``more_marks`` and ``more_seqs``."""
    for key, step in more_marks.items():
        marks[key] = max(marks.get(key, step), step)
    for agent, seq in more_seqs.items():
        seqs[agent] = max(seqs.get(agent, seq), seq)


def _raise_marks(memory: Memory, marks: dict[tuple[str, str], int],
                 seqs: dict[str, int]) -> int:
    """Raise each agent's marks and ``.r`` counter to at least ``marks`` and ``seqs``
    (``retired_seed.lua``, 1,000 agents per round trip); returns the number of agents."""
    per_agent: dict[str, list[str | int]] = {a: [] for a in seqs}
    for (agent, sim), step in marks.items():
        per_agent.setdefault(agent, []).extend((sim, step))
    template = memory.actions.layout.template("retired")
    calls = [script_call(RETIRED_SEED, (seqs.get(agent, 0), *pairs),
                         (template.render({"agent_id": agent}),))
             for agent, pairs in per_agent.items()]
    run = memory.runner.run
    for start in range(0, len(calls), 1000):
        run(Plan(tuple(calls[start:start + 1000]), every_reply))
    return len(calls)


def _look(memory: Memory, markers: list[str], patient: bool
          ) -> tuple[list[bytes | None], bytes | None] | object:
    """:func:`_state`; with ``patient`` on a cluster, :data:`_FINISHING` instead when some
    masters hold a seeding's sentinel and others none. The sentinels are looked at
    first: a master's marker is set and its sentinel deleted in one script, so markers
    read after no sentinel was found are final (read before, a seeding that finished in
    between would leave markers about to change taken)."""
    if patient and len(markers) > 1:  # a cluster: is another seeding finishing?
        held = [int(x) for x in memory.runner.run(
            Plan(tuple(command("EXISTS", k + ":seeding") for k in markers), every_reply))]
        if any(held) and not all(held):
            return _FINISHING
    return _state(memory, markers)


def _state(memory: Memory, markers: list[str]) -> tuple[list[bytes | None], bytes | None]:
    """The markers' tokens (None: missing) and, on one server, its ``run_id``: one round
    trip."""
    runner: Any = memory.runner
    one = not getattr(runner, "cluster", False)
    calls = [command("GET", k) for k in markers]
    if one:
        calls.append(command("INFO", "server"))
    got = runner.run(Plan(tuple(calls), list))  # INFO refused (an ACL): no run_id
    every_reply(got[:len(markers)])  # a refused GET is raised
    tokens = [t if t is None or isinstance(t, bytes) else str(t).encode()
              for t in got[:len(markers)]]
    return tokens, server_run_id(got[-1]) if one else None


def watch_restarts(memory: Memory, seeded: Seeded) -> bool:
    """Arm ``memory``'s restart guard (:mod:`agentmem.backends.restarts`) with the markers'
    tokens and the server's ``run_id`` (one round trip), if they are still what the
    seeding ``seeded`` left or found: a connection that later finds them changed trips
    it. Otherwise (Redis lost the marks, restarted or was seeded again meanwhile) the
    guard is tripped and False returned: seed again."""
    runner: Any = memory.runner
    keys = _markers(memory)
    tokens, run_id = _state(memory, keys)
    if tuple(tokens) != seeded.tokens or run_id != seeded.run_id:
        runner.guard.trip()
        return False
    cluster = getattr(runner, "cluster", False)
    if run_id is None and not cluster and not _WARNED:
        _WARNED.append(True)
        log.warning("Redis refuses INFO to this client: a restart that reloads an older "
                    "snapshot (RDB) goes unnoticed, and ids of actions written after the "
                    "snapshot may be given again (docs/durability.md)")
    markers: dict[str | None, tuple[str, bytes | None]] = {
        (runner.master_of(k) if cluster else None): (k, t) for k, t in zip(keys, tokens,
                                                                            strict=True)}
    armed: bool = runner.guard.arm(markers, run_id)
    return armed


def eviction_policy(memory: Memory) -> str | None:
    """The server's ``maxmemory-policy`` (one server), or None when it does not say."""
    reply = memory.runner.run(Plan((command("CONFIG", "GET", "maxmemory-policy"),),
                                   every_reply))[0]
    if isinstance(reply, dict):  # RESP3
        reply = [x for kv in reply.items() for x in kv]
    if not isinstance(reply, list) or len(reply) < 2:
        return None
    value = reply[1]
    return value.decode() if isinstance(value, bytes) else str(value)


def _markers(memory: Memory) -> list[str]:
    """:data:`IDS_KEY` on one server; on a cluster one marker on each master: the first
    of ``agentmem:ids:{0}``, ``{1}``, ... whose slot that master serves."""
    runner: Any = memory.runner
    if not getattr(runner, "cluster", False):
        return [IDS_KEY]
    masters = {str(n.name) for n in runner.primaries()}
    found: dict[str, str] = {}
    tag = 0
    while len(found) < len(masters) and tag < 1_000_000:
        key = f"{IDS_KEY}:{{{tag}}}"
        found.setdefault(runner.master_of(key), key)
        tag += 1
    return sorted(found.values())


def not_held(memory: Memory, actions: list[Action]) -> list[Action]:
    """Those of ``actions`` short-term memory does not hold under their ids (one round
    trip, :func:`held`)."""
    here = held(memory, ((a.agent_id, str(a.action_id)) for a in actions))
    return [a for a in actions if (a.agent_id, str(a.action_id)) not in here]


def held(memory: Memory, keys: Iterable[Key]) -> dict[Key, Action]:
    """The actions short-term memory holds under the (agent id, action id) ``keys``, in
    one round trip (one ``get_many`` per agent, batched)."""
    return _held(memory, keys, lambda b: b.actions)


def held_in_im(memory: Memory, keys: Iterable[Key]) -> dict[Key, IMAction]:
    """As :func:`held`, in intermediate memory."""
    return _held(memory, keys, lambda b: b.im_actions)


def _held(memory: Memory, keys: Iterable[Key], repo: Callable[[Batch], Any]
          ) -> dict[Key, Any]:
    ids: dict[str, list[str]] = {}
    for agent, aid in keys:
        ids.setdefault(agent, []).append(aid)
    if not ids:
        return {}
    with memory.batch() as b:
        found = {agent: repo(b).get_many(some, agent_id=agent) for agent, some in ids.items()}
    return {(agent, str(got.action_id)): got for agent, handle in found.items()
            for got in handle.result() if got is not None and got.action_id is not None}


def retired_steps(memory: Memory, scopes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The retired mark of each (agent id, simulation id) in ``scopes``: the highest of
    its simulation's mark and the agent's mark of every simulation (``:any``), in one
    round trip; scopes with neither are left out. A generated id at or below it is
    numbered ``.r<n>`` by the write script (docs/keyspace.md, "Ids for the life of the
    data")."""
    wanted = sorted(set(scopes))
    if not wanted:
        return {}
    lay = memory.actions.layout
    calls = [command("HMGET", lay.key("retired", agent_id=agent), sim, ":any")
             for agent, sim in wanted]
    out: dict[tuple[str, str], int] = {}
    for scope, reply in zip(wanted, memory.runner.run(Plan(calls, every_reply)), strict=True):
        marks = [int(v) for v in reply if v is not None and bytes(v).isdigit()]
        if marks:
            out[scope] = max(marks)
    return out
