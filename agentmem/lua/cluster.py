"""The Lua scripts of integrity on Redis Cluster (:mod:`agentmem.backends.clusterwalk`):
agent-level checks in each agent's slot, simulation-level checks in each
simulation's slot, and the recount of the type counters."""

from __future__ import annotations

from agentmem.lua.loader import load

__all__ = ["AGENT_CHECK", "CLAIM_LAYOUT_CLUSTER", "SET_COUNTERS", "SIM_CHECK",
           "SIM_ORPHANS"]

AGENT_CHECK = load("cluster/cluster_integrity_agent.lua", "cluster_integrity_agent")
SIM_CHECK = load("cluster/cluster_integrity_sim.lua", "cluster_integrity_sim")
SIM_ORPHANS = load("cluster/cluster_integrity_sim_orphans.lua", "cluster_integrity_sim_orphans")
CLAIM_LAYOUT_CLUSTER = load("cluster/claim_layout_cluster.lua", "claim_layout_cluster")
SET_COUNTERS = load("cluster/cluster_integrity_counters.lua", "cluster_integrity_counters")
