"""The keys one agent's tiers touch, as the tier scripts take them, and the small
helpers of the tier plans (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentmem.plans.keyspace import Layout, check_part, sorted_families
from agentmem.plans.keyspace import key_pieces as _pieces
from agentmem.plans.plan import Plan

__all__ = ["Shapes"]


STM_FIELDS = ("simulation_id", "step_number", "agent_id", "action_type", "reward",
              "action_target_id")
"""The fields of an action the move to IM reads, in the order ``to_im`` takes their names."""
IM_FIELDS = ("action_id", "simulation_id", "step_number", "agent_id", "action_type", "reward",
             "importance", "action_target_id")
"""The fields of the IM hash the move writes, in the order ``to_im`` takes their names."""


class Shapes:
    """The keys of one agent as the tier scripts build them (prefixes and suffixes), and
    the hash fields they read and write, as the layout names them."""

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
        self.families_kind = "z" if sorted_families(layout.version) else "s"
        """The types and targets keys: 'z' sorted sets (layout 4), 's' sets."""
        self.retired = t("retired").render(a)
        """The agent's retired marks: every move raises its simulation's to the step."""
        self.fields = [*map(layout.action.codec.wire, STM_FIELDS),
                       *map(layout.im_action.codec.wire, IM_FIELDS)]
        """The hash fields of :data:`STM_FIELDS` in an action hash, then of
        :data:`IM_FIELDS` in an IM hash (``codec.wire``)."""

    def argv(self) -> list[str]:
        """What ``to_im`` takes after the IM TTL: the key shapes, then :attr:`fields`."""
        return [*self.hash, self.timeline, self.relative, self.rewards, *self.types,
                *self.targets, *self.sim_actions, *self.sim_step, *self.sim_steps,
                *self.sim_by_type, *self.im_hash, self.im_timeline, self.grid,
                *self.sim_grid, *self.fields]


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(raw: Any) -> list[tuple[Any, Any]]:
    """``ZRANGE ... WITHSCORES`` as (member, score) pairs, whether the reply is a flat
    list (RESP2) or already pairs (RESP3)."""
    if raw and isinstance(raw[0], list | tuple):
        return [(m, s) for m, s in raw]
    return list(zip(raw[0::2], raw[1::2], strict=True))


def _glob(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
