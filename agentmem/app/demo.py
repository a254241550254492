"""A small agent-based simulation that shows agentmem at work (see ``docs/demo.md``).

``run_demo(memory, archive, config)`` moves ``config.agents`` agents on a 2-D
grid with resource patches for ``config.steps`` steps. Each agent takes one
action per step (move, gather, share, attack, reproduce, defend, pass),
chosen from its surroundings and, now and then, from its own memory
(``high_reward`` and ``by_type``). Every action goes through a
:class:`~agentmem.dualwrite.DualWriter` (Redis now, the SQL archive in bulk);
:class:`~agentmem.tiers.Tiers` moves old actions STM -> IM -> archive every
``maintain_every`` steps. The run is deterministic for a seed. The result is a
:class:`DemoSummary`: throughput, actions per tier, Redis memory, example
query latencies and a per-maintenance series for :mod:`agentmem.app.report`.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentmem.app.report import QueryTiming, tier_counts, time_queries, used_memory
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import ConfigError
from agentmem.model.fields import ID_MAX_LENGTH, check_id
from agentmem.model.records import Action
from agentmem.tiers.maintenance import TierPolicy, Tiers

__all__ = ["TYPES", "DemoConfig", "DemoSummary", "SeriesPoint", "run_demo"]

TYPES = ("move", "gather", "share", "attack", "reproduce", "defend", "pass")
VISION = 8.0  # how far an agent sees other agents
REACH = 3.0  # how close to a patch an agent must be to gather
METABOLISM = 0.1  # resources every action costs
REPRODUCE_COST = 8.0
REGROWTH = 1.0  # resources a patch regains per step


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class DemoConfig:
    """The simulation's size and seed, and the tier policy it runs with."""

    agents: int = 50
    steps: int = 200
    seed: int = 0
    width: float = 100.0
    height: float = 100.0
    simulation_id: str = "demo"
    agent_prefix: str = "agent_"  # agent ids: agent_0, agent_1, ... (AgentFarm's style)
    stm_steps: int = 20
    stm_capacity: int = 40
    im_capacity: int = 100
    maintain_every: int = 10
    recall_chance: float = 0.1  # chance per agent and step to consult its memory

    def __post_init__(self) -> None:
        ints = ("agents", "steps", "stm_steps", "stm_capacity", "im_capacity", "maintain_every")
        rules: list[tuple[str, str, Callable[[Any], bool]]] = [
            *((n, "a positive int", lambda v: _is_int(v) and v >= 1) for n in ints),
            ("seed", "an int", _is_int),
            *((n, "a positive finite number", lambda v: _is_num(v) and 0 < v < math.inf)
              for n in ("width", "height")),
            ("recall_chance", "a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)]
        for name, what, ok in rules:
            if not ok(value := getattr(self, name)):
                raise ConfigError(f"{name} must be {what}, got {value!r}")
        try:
            check_id(self.simulation_id, what="simulation_id")
            if not isinstance(self.agent_prefix, str):
                raise ValueError(f"agent_prefix must be a string, got {self.agent_prefix!r}")
            check_id(self.agent_id(self.agents - 1), what="agent id", max_length=ID_MAX_LENGTH)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def agent_id(self, n: int) -> str:
        """The id of agent ``n``: ``agent_prefix`` followed by ``n``."""
        return f"{self.agent_prefix}{n}"

    def policy(self) -> TierPolicy:
        return TierPolicy(stm_steps=self.stm_steps, stm_capacity=self.stm_capacity,
                          im_capacity=self.im_capacity)


@dataclass
class SeriesPoint:
    """The stores after one maintenance: actions per tier and Redis ``used_memory``."""

    step: int
    stm: int
    im: int
    archived: int
    used_memory: int


@dataclass
class DemoSummary:
    """What :func:`run_demo` did and what the stores hold afterwards (JSON via ``to_dict``)."""

    simulation_id: str
    agents: int
    steps: int
    seed: int
    actions_logged: int
    seconds: float
    actions_per_second: float
    stm_actions: int  # in Redis short-term memory now (timelines of the demo's agents)
    im_actions: int  # in Redis intermediate memory now
    archived_actions: int  # archive rows of this simulation
    archive_rows: int  # archive rows of all simulations
    used_memory: int  # Redis INFO memory used_memory at the end, bytes
    peak_used_memory: int  # highest used_memory sampled (every step), bytes
    moved_to_im: int
    evicted_from_im: int
    memory_queries: int  # queries the agents made to decide
    action_counts: dict[str, int] = field(default_factory=dict)
    queries: list[QueryTiming] = field(default_factory=list)
    series: list[SeriesPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Agent:
    agent_id: str
    x: float
    y: float
    resources: float
    attacked: bool = False  # attacked since its last action
    defending: bool = False


@dataclass
class _Patch:
    patch_id: str
    x: float
    y: float
    amount: float
    capacity: float


class _World:
    """The simulation state and the agents' rules; all randomness from one seeded RNG."""

    def __init__(self, config: DemoConfig, memory: Memory) -> None:
        self.cfg, self.memory = config, memory
        self.rnd = random.Random(config.seed)
        self.patches = [_Patch(f"r{k}", *self._spot(), *[round(self.rnd.uniform(20, 40), 2)] * 2)
                        for k in range(max(3, config.agents // 4))]
        self.agents = [_Agent(config.agent_id(n), *self._spot(),
                              round(self.rnd.uniform(5, 15), 2)) for n in range(config.agents)]
        self.recalls = 0

    def _spot(self) -> tuple[float, float]:
        return (round(self.rnd.uniform(0, self.cfg.width), 2),
                round(self.rnd.uniform(0, self.cfg.height), 2))

    def step(self, step: int) -> list[Action]:
        for p in self.patches:
            p.amount = min(p.capacity, round(p.amount + REGROWTH, 3))
        order = list(self.agents)
        self.rnd.shuffle(order)
        return [self._act(a, step) for a in order]

    def _choose(self, a: _Agent, patch: _Patch, dist: float, near: list[_Agent]) -> str:
        w = {"move": 1.0 + (2.0 if dist > REACH else 0.0),
             "gather": 3.0 if dist <= REACH and patch.amount > 0.5 else 0.0,
             "share": 1.0 if near and a.resources > 12 else 0.0,
             "attack": (1.0 if a.resources < 4 else 0.3) if near else 0.0,
             "reproduce": 1.5 if a.resources > 15 else 0.0,
             "defend": 2.0 if a.attacked else 0.2,
             "pass": 0.2}
        if self.rnd.random() < self.cfg.recall_chance:  # consult its own memory
            self.recalls += 2
            best = self.memory.actions.high_reward(a.agent_id, min_reward=0.5, limit=5)
            if best:
                liked = Counter(x.action_type for x in best).most_common(1)[0][0]
                w[liked] *= 2.0
            fights = self.memory.actions.by_type(a.agent_id, "attack", limit=5)
            if fights and statistics.fmean(x.reward or 0.0 for x in fights) < 0:
                w["attack"] *= 0.25
        return self.rnd.choices(TYPES, weights=[w[t] for t in TYPES])[0]

    def _act(self, a: _Agent, step: int) -> Action:
        rnd, cfg = self.rnd, self.cfg
        patch = min(self.patches, key=lambda p: math.hypot(p.x - a.x, p.y - a.y))
        dist = math.hypot(patch.x - a.x, patch.y - a.y)
        near = [b for b in self.agents
                if b is not a and math.hypot(b.x - a.x, b.y - a.y) <= VISION]
        kind = self._choose(a, patch, dist, near)
        before, target = a.resources, None
        reward = 0.0
        details: dict[str, Any]
        if kind == "move":
            old = [a.x, a.y]
            if dist > REACH:  # head for the nearest patch
                length = min(rnd.uniform(1, 3), dist) / dist
                dx, dy = (patch.x - a.x) * length, (patch.y - a.y) * length
            else:  # look around it
                dx, dy = rnd.uniform(-3, 3), rnd.uniform(-3, 3)
            a.x = round(min(cfg.width, max(0.0, a.x + dx)), 2)
            a.y = round(min(cfg.height, max(0.0, a.y + dy)), 2)
            closer = math.hypot(patch.x - a.x, patch.y - a.y) < dist
            reward = 0.1 if closer else -0.05
            details = {"old_position": old, "new_position": [a.x, a.y],
                       "distance": round(math.hypot(a.x - old[0], a.y - old[1]), 3)}
        elif kind == "gather":
            amount = round(min(patch.amount, rnd.uniform(0.5, 3.0)), 3)
            details = {"amount_gathered": amount, "resource_id": patch.patch_id,
                       "resource_before": patch.amount,
                       "resource_after": round(patch.amount - amount, 3)}
            patch.amount = round(patch.amount - amount, 3)
            a.resources += amount
            reward = amount / 3.0
        elif kind in ("share", "attack"):
            other = rnd.choice(near)
            target = other.agent_id
            if kind == "share":
                amount = round(min(2.0, a.resources * 0.2), 3)
                a.resources -= amount
                other.resources += amount
                reward = 0.2 + 0.1 * amount
                details = {"amount_shared": amount, "target_id": target, "success": amount > 0}
            else:
                hit = rnd.random() < (0.3 if other.defending else 0.6)
                damage = round(rnd.uniform(1, 4), 3) if hit else 0.0
                stolen = min(other.resources, damage)
                other.resources -= stolen
                a.resources += stolen * 0.5
                other.attacked = True
                reward = damage * 0.25 if hit else -0.4
                details = {"damage_dealt": damage, "target_id": target,
                           "target_position": [other.x, other.y], "success": hit}
        elif kind == "reproduce":
            ok = a.resources > REPRODUCE_COST + 5 and rnd.random() < 0.6
            a.resources -= REPRODUCE_COST if ok else 0.0
            reward = 1.0 if ok else -0.2
            details = {"success": ok, "offspring_cost": REPRODUCE_COST if ok else 0.0}
        elif kind == "defend":
            reward = 0.3 if a.attacked else -0.05
            details = {"is_defending": True, "was_attacked": a.attacked}
        else:
            details = {"reason": "idle"}
        a.defending, a.attacked = kind == "defend", False
        a.resources = round(max(0.0, a.resources - METABOLISM), 3)
        reward += rnd.uniform(-0.05, 0.05)  # a little noise, as in any environment
        return Action(agent_id=a.agent_id, simulation_id=cfg.simulation_id, step_number=step,
                      action_type=kind, action_target_id=target, resources_before=before,
                      resources_after=a.resources, reward=round(reward, 4), details=details,
                      position=(a.x, a.y))


def run_demo(memory: Memory, archive: Archive, config: DemoConfig | None = None, *,
             progress: Callable[[int, int], None] | None = None,
             series_path: str | Path | None = None) -> DemoSummary:
    """Run the simulation on ``memory`` and ``archive``; see the module doc.

    Raises :class:`ConfigError` when the archive already holds the simulation
    or Redis holds actions of its agents: a second run into the same stores
    would mix with the first (use another ``simulation_id`` and ``agent_prefix``,
    or empty stores).
    """
    cfg = config or DemoConfig()
    ids = [cfg.agent_id(n) for n in range(cfg.agents)]
    if archive.count(cfg.simulation_id):
        raise ConfigError(f"the archive already holds simulation {cfg.simulation_id!r}; "
                          "use another simulation_id or an empty archive")
    if any(tier_counts(memory, ids)):
        raise ConfigError(f"Redis already holds actions of agents {ids[0]!r}...; use another "
                          "agent_prefix or an empty database")
    world = _World(cfg, memory)
    tiers = Tiers(memory, cfg.policy(), archive=archive)
    series: list[SeriesPoint] = []
    counts: Counter[str] = Counter()
    logged = moved = evicted = 0
    peak = used_memory(memory)

    def sample(step: int) -> None:
        stm, im = tier_counts(memory, ids)
        point = SeriesPoint(step, stm, im, archive.count(cfg.simulation_id), used_memory(memory))
        if series and series[-1].step == step:
            series[-1] = point
        else:
            series.append(point)

    def maintain(step: int) -> None:
        nonlocal moved, evicted
        report = tiers.maintain(ids, now_step=step)
        moved += report.to_im
        evicted += report.evicted
        sample(step)

    start = time.perf_counter()
    writer = DualWriter(memory, archive)
    try:
        for step in range(cfg.steps):
            actions = world.step(step)
            writer.add_many(actions)
            writer.flush_if_needed()
            logged += len(actions)
            counts.update(a.action_type for a in actions)
            peak = max(peak, used_memory(memory))
            if (step + 1) % cfg.maintain_every == 0:
                maintain(step)
            if progress is not None:
                progress(step + 1, cfg.steps)
    finally:
        writer.close()
    maintain(cfg.steps - 1)
    seconds = time.perf_counter() - start
    stm, im = tier_counts(memory, ids)
    now_used = used_memory(memory)
    summary = DemoSummary(
        simulation_id=cfg.simulation_id, agents=cfg.agents, steps=cfg.steps, seed=cfg.seed,
        actions_logged=logged, seconds=round(seconds, 3),
        actions_per_second=round(logged / seconds, 1) if seconds > 0 else 0.0,
        stm_actions=stm, im_actions=im, archived_actions=archive.count(cfg.simulation_id),
        archive_rows=archive.count(), used_memory=now_used,
        peak_used_memory=max(peak, now_used, *(p.used_memory for p in series)),
        moved_to_im=moved, evicted_from_im=evicted, memory_queries=world.recalls,
        action_counts={t: counts[t] for t in TYPES},
        queries=time_queries(memory, cfg.agent_id(0), cfg.simulation_id, cfg.steps - 1),
        series=series)
    if series_path is not None:
        Path(series_path).write_text(json.dumps(summary.to_dict(), indent=1))
    return summary
