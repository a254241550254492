"""The decision loop of an agent with memory, on agentmem.

A few agents walk a small 2-D world. What an action earns depends on where it is
taken: ``gather`` pays near the forest, ``fish`` near the lake, ``rest`` a little
everywhere. No agent knows this. Each step, each agent

1. searches its memory near its position (``mem.actions.near``),
2. computes the expected reward of each action type from those memories (their mean),
3. explores (a random type, with probability ``EPSILON``) or exploits (the best type),
4. acts, gets its reward from the world, and remembers the action (``mem.actions.add``).

Run it with ``python docs/examples/decision_loop.py [redis-url]``; with no URL it
starts a private server. Use an empty database: memories of an earlier run are
found too (that is what memory is for), and the summary would mix both runs.
"""

from __future__ import annotations

import math
import random
import sys
from collections import defaultdict
from typing import Any

import agentmem
from agentmem.model.records import Action
from agentmem.servers.local import LocalServer, find_binary

SIMULATION = "decision_loop"
ACTIONS = ("gather", "fish", "rest")
SPOTS = {"gather": (2.0, 2.0), "fish": (7.0, 7.0)}  # where each action pays
SIZE = 10        # positions are the integer points 0..SIZE-1 on both axes
RADIUS = 1.5     # "near": this position and its eight neighbours
MEMORIES = 50    # the nearest memories a decision reads
EPSILON = 0.1    # the share of random (exploring) decisions
UNTRIED = 1.0    # the expected reward of a type with no memories nearby (optimistic)


def mean_reward(action_type: str, x: float, y: float) -> float:
    """What the world pays on average: up to 1.0 at the action's spot, fading to 0
    over 4 cells; rest: 0.3 everywhere. Each reward adds some noise to it."""
    if action_type == "rest":
        return 0.3
    sx, sy = SPOTS[action_type]
    return max(0.0, 1.0 - math.hypot(x - sx, y - sy) / 4.0)


def best_action(x: float, y: float) -> str:
    """What an agent that knew the world would do here (the agents must learn it)."""
    return max(ACTIONS, key=lambda t: mean_reward(t, x, y))


def expected_rewards(memories: list[Action]) -> dict[str, float]:
    """Mean reward per action type over the memories (types never tried are absent)."""
    rewards: dict[str, list[float]] = defaultdict(list)
    for m in memories:
        if m.reward is not None:
            rewards[m.action_type].append(m.reward)
    return {t: sum(r) / len(r) for t, r in rewards.items()}


def choose(expected: dict[str, float], rng: random.Random) -> tuple[str, bool]:
    """Epsilon-greedy: a random type (exploring), or the best expected one. A type
    never tried here counts as ``UNTRIED``, so that each gets tried once."""
    if rng.random() < EPSILON:
        return rng.choice(ACTIONS), True
    return max(ACTIONS, key=lambda t: expected.get(t, UNTRIED)), False


def step_to(x: float, y: float, rng: random.Random) -> tuple[float, float]:
    """A random walk of one cell (or none), staying in the world."""
    dx, dy = rng.choice((-1, 0, 1)), rng.choice((-1, 0, 1))
    return (min(max(x + dx, 0), SIZE - 1), min(max(y + dy, 0), SIZE - 1))


def run(mem: agentmem.Memory, agents: int = 4, steps: int = 200,
        seed: int = 7) -> dict[str, Any]:
    """The simulation: ``agents`` x ``steps`` decisions, each remembered in ``mem``."""
    rng = random.Random(seed)
    where = {f"agent_{i}": (float(rng.randrange(SIZE)), float(rng.randrange(SIZE)))
             for i in range(agents)}
    wealth = dict.fromkeys(where, 0.0)
    per_step: list[tuple[float, float]] = []  # per step: rewards, best possible rewards
    explored = 0
    for step in range(steps):
        total, best = 0.0, 0.0
        for agent_id, (x, y) in where.items():
            # 1. search by position: this agent's memories around (x, y)
            nearby = mem.actions.near(agent_id, x, y, RADIUS, limit=MEMORIES)
            # 2. expected reward per action type
            expected = expected_rewards([n.record for n in nearby])
            # 3. explore or exploit
            action_type, exploring = choose(expected, rng)
            explored += exploring
            # 4. act, get the reward, remember
            reward = mean_reward(action_type, x, y) + rng.gauss(0.0, 0.1)
            best += mean_reward(best_action(x, y), x, y)
            mem.actions.add(Action(
                agent_id=agent_id, simulation_id=SIMULATION, step_number=step,
                action_type=action_type, reward=reward, position=(x, y),
                resources_before=wealth[agent_id], resources_after=wealth[agent_id] + reward,
                details={"explored": exploring, "expected": expected.get(action_type)}))
            wealth[agent_id] += reward
            total += reward
            where[agent_id] = step_to(x, y, rng)
        per_step.append((total, best))
    quarter = max(1, steps // 4)
    first, last = per_step[:quarter], per_step[-quarter:]
    n = quarter * agents
    return {
        "agents": agents,
        "steps": steps,
        "actions": agents * steps,
        "explored": explored,
        "first_quarter": sum(t for t, _ in first) / n,
        "last_quarter": sum(t for t, _ in last) / n,
        "share_first_quarter": sum(t for t, _ in first) / sum(b for _, b in first),
        "share_last_quarter": sum(t for t, _ in last) / sum(b for _, b in last),
        "wealth": wealth,
    }


def main(url: str | None = None, *, agents: int = 4, steps: int = 200,
         seed: int = 7) -> dict[str, Any]:
    """Run against ``url`` (or a private server when None) and print the summary."""
    if url is None:
        with LocalServer("redis" if find_binary("redis") else "valkey") as server:
            return main(server.url, agents=agents, steps=steps, seed=seed)
    with agentmem.connect(url) as mem:
        summary = run(mem, agents=agents, steps=steps, seed=seed)
    print(f"{summary['actions']} actions remembered ({summary['agents']} agents x "
          f"{summary['steps']} steps, {summary['explored']} explored)")
    print(f"mean reward per action: first quarter {summary['first_quarter']:.3f}, "
          f"last quarter {summary['last_quarter']:.3f}")
    print(f"share of the best possible: first quarter {summary['share_first_quarter']:.0%}, "
          f"last quarter {summary['share_last_quarter']:.0%}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
