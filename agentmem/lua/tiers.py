"""Server-side scripts of the memory tiers (see ``docs/tiers.md``).

- :data:`TO_IM` moves actions of one agent from short-term memory (STM) to
  intermediate memory (IM): each action's compressed hash and IM timeline
  entry are written and the action leaves **every** short-term index, the
  relative index and the simulation-level ones included. Atomic per action,
  many actions per call.
- :data:`TO_IM_AGENT` / :data:`TO_IM_SIM`: the same move split in two on a Redis
  Cluster, where an agent's keys and a simulation's keys live in different slots:
  the agent-slot part (atomic per agent) reports what the simulation-slot part then
  removes (see ``docs/cluster.md``).
- :data:`EVICT_IM` deletes IM entries (after the archive has them).
- :data:`HISTORY` reads an agent's STM and IM timelines as one sequence.

Key shapes come from the layout (``Shapes``), so the scripts hold no key names.
"""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["EVICT_IM", "EVICT_PLAN", "HISTORY", "PIN", "TO_IM", "TO_IM_AGENT", "TO_IM_SIM"]

TO_IM = load("tiers/to_im.lua", "to_im")
TO_IM_AGENT = load("tiers/to_im_agent.lua", "to_im_agent")
TO_IM_SIM = load("tiers/to_im_sim.lua", "to_im_sim")
EVICT_IM = load("tiers/evict_im.lua", "evict_im")
PIN = load("tiers/pin.lua", "pin")
HISTORY = load("tiers/history.lua", "history")
EVICT_PLAN = load("tiers/evict_plan.lua", "evict_plan")
