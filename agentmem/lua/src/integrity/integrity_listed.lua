#!lua
-- integrity_listed: actions missing from their simulation list.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, action pattern, sim_actions pattern, simulation field name, (agent_id, action_id) pairs
-- Reply: the pairs whose hash exists and whose list lacks them
--!include lib/integrity_common.lua

-- ARGV: mode, action pattern, sim_actions pattern, the action hash's field name of
-- simulation_id (the layout's name), then (agent_id, action_id) pairs the client did
-- not see in the simulation list. Re-checks with LPOS; returns the (agent_id,
-- action_id) pairs whose hash exists and whose simulation list lacks them; fix:
-- RPUSHes them.
local out = {}
for i = 5, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local sim = call('HGET', render(ARGV[2], t), ARGV[4])
  if sim then
    t.simulation_id = sim
    local lk = render(ARGV[3], t)
    if not call('LPOS', lk, t.action_id) then
      out[#out + 1] = t.agent_id; out[#out + 1] = t.action_id
      if fix then call('RPUSH', lk, t.action_id) end
    end
  end
end
return out
