#!lua
-- to_im_agent: the agent-slot part of to_im on a Redis Cluster.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: as to_im (the simulation shapes are passed, not used)
-- Reply: {moved ids, missing ids, refused ids, {simulation, id, step, type, ...}, pinned ids, changed ids}
-- The agent-slot part of TO_IM on a Redis Cluster. ARGV as TO_IM (the simulation-level
-- shapes are passed but not used). Writes the IM hash and timeline entry and removes
-- the action from the agent's STM hash and agent-level indices. Returns {moved ids,
-- missing ids, refused ids, {simulation, id, step, type, ...}, pinned ids} for TO_IM_SIM
-- (a pinned id stays untouched, as does one whose hash changed since the caller read it:
-- changed ids).
--!include lib/to_im_check.lua
--!include lib/to_im_move.lua
        sims[#sims + 1] = sim; sims[#sims + 1] = id
        sims[#sims + 1] = step; sims[#sims + 1] = typ
      end
      moved[#moved + 1] = id
    end
  end
end
if relsize then refill(rel, tl, relsize) end
return {moved, missing, refused, sims, pinned, changed}
