"""Ids for the life of the data when Redis lost its data (docs/keyspace.md).

The write script never generates an id at or below an agent's retired mark for a
simulation (:class:`~agentmem.model.schema.Retired`); tier transitions raise the marks.
A Redis that restarted empty has no marks, while the archive still holds the ids
given before. So a dual writer that opens a Redis without the marker key
``agentmem:ids`` first raises every (agent, simulation) mark to the highest step
the archive holds, and each agent's ``.r`` counter to the highest suffix archived,
then sets the marker. Seeding twice, or by two writers at once, only raises marks
to the same values. On a Redis Cluster each master can lose its data on its own, so
there is one marker per master, on that master (``agentmem:ids:{<tag>}``, the tag
chosen for a slot it serves): seeding runs when any master lacks its marker.

:func:`held` and :func:`held_in_im` tell which of a list of (agent, id) pairs short-term
or intermediate memory holds, in one round trip: the replay of a journal, a partly
refused write and ``load_from_sql`` ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from agentmem.backends import sqlreads
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.lua.dualwrite import RETIRED_SEED
from agentmem.model.records import Action, IMAction
from agentmem.plans.plan import Plan, command, every_reply, script_call
from agentmem.repository.batch import Batch

__all__ = ["IDS_KEY", "held", "held_in_im", "seed_retired"]

T = TypeVar("T", Action, IMAction)
Key = tuple[str, str]
"""(agent_id, action_id): what Redis keeps unique."""

IDS_KEY = "agentmem:ids"
"""Present once this Redis's retired marks hold what the archive knows (no TTL)."""


def seed_retired(memory: Memory, archive: Archive) -> int:
    """Seed the retired marks of ``memory`` from ``archive`` unless done already on this
    Redis; returns the number of agents seeded (0: the marker was there)."""
    run = memory.runner.run
    markers = _markers(memory)
    if all(run(Plan(tuple(command("EXISTS", k) for k in markers), every_reply))):
        return 0
    marks, seqs = sqlreads.retired_marks(archive)
    per_agent: dict[str, list[str | int]] = {a: [] for a in seqs}
    for (agent, sim), step in marks.items():
        per_agent.setdefault(agent, []).extend((sim, step))
    template = memory.actions.layout.template("retired")
    calls = [script_call(RETIRED_SEED, (seqs.get(agent, 0), *pairs),
                         (template.render({"agent_id": agent}),))
             for agent, pairs in per_agent.items()]
    for start in range(0, len(calls), 1000):
        run(Plan(tuple(calls[start:start + 1000]), every_reply))
    run(Plan(tuple(command("SET", k, "seeded") for k in markers), every_reply))
    return len(calls)


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
