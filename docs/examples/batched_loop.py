"""A decision loop of many agents, one round trip per step (docs/decision-loop.md).

Each step, one batch holds the actions the agents chose at the step before and, for
every agent, its recent actions and its recent "gather" actions; the agents then
decide from what the batch returned.

    python docs/examples/batched_loop.py                            # a private server
    python docs/examples/batched_loop.py redis://127.0.0.1:6379/5   # an empty database of yours
"""

from __future__ import annotations

import random
import sys

import agentmem
from agentmem import Action
from agentmem.servers.local import LocalServer, find_binary

ACTIONS = ("gather", "fish", "rest")
SIMULATION = "sim-batched"


def run(mem: agentmem.Memory, agents: int = 1000, steps: int = 5, seed: int = 7) -> int:
    """Run the loop; return the round trips it took (one per step, one final write)."""
    rng = random.Random(seed)
    names = [f"agent_{i}" for i in range(agents)]
    decided: list[Action] = []         # the actions chosen at the step before
    trips = 0
    for step in range(steps):
        with mem.batch() as b:         # one round trip for the whole step
            if decided:
                b.actions.add_many(decided)
            recent = {a: b.actions.recent(a, 10) for a in names}
            gathered = {a: b.actions.by_type(a, "gather", limit=10) for a in names}
        trips += 1
        decided = []
        for a in names:
            memories = recent[a].result()          # list[Action], newest first
            good = [m.reward or 0.0 for m in gathered[a].result()]
            exploit = bool(good) and sum(good) / len(good) > 0.5
            kind = "gather" if exploit else rng.choice(ACTIONS)
            decided.append(Action(agent_id=a, simulation_id=SIMULATION, step_number=step,
                                  action_type=kind, reward=rng.random(),
                                  details={"memories": len(memories)}))
    mem.actions.add_many(decided)
    return trips + 1


def main(url: str | None = None, *, agents: int = 1000, steps: int = 5) -> int:
    """Run against ``url`` (or a private server when None) and print what it did."""
    if url is None:
        with LocalServer("redis" if find_binary("redis") else "valkey") as server:
            return main(server.url, agents=agents, steps=steps)
    with agentmem.connect(url) as mem:
        trips = run(mem, agents=agents, steps=steps)
        stored = len(mem.actions.recent("agent_0", 10))
    print(f"{agents} agents x {steps} steps in {trips} round trips; agent_0 remembers {stored}")
    return trips


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
