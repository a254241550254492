#!lua
-- integrity_actions: action hashes missing from their indices.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, patterns, grid cell, types/targets kind, 7 hash field names, (agent_id, action_id) pairs
-- Reply: per hash {id, agent, simulation, type, step, missing families}
--!include lib/integrity_common.lua
--!include lib/agent_indices.lua

-- ARGV: mode, patterns (action timeline types targets rewards sim_step sim_steps grid
-- sim_grid), grid cell size, the kind of the types and targets keys ('z' sorted sets,
-- layout 4; 's' sets), the action hash's field names of simulation_id,
-- step_number, action_type, action_target_id, reward, position_x and position_y (the
-- layout's names), then (agent_id, action_id) pairs. For each action hash that exists:
-- is it in each index it belongs in? fix: adds it from its own fields.
-- Returns per hash {id, agent, simulation, type, step, missing families (comma
-- separated)}.
local P = {unpack(ARGV, 2, 10)}
local cell = tonumber(ARGV[11])
local ixkind = ARGV[12]
local F = {unpack(ARGV, 13, 19)}
local out = {}
for i = 20, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local id = t.action_id
  local f = redis.pcall('HMGET', render(P[1], t), unpack(F))
  if f.err == nil and f[1] and f[2] and f[3] then
    t.simulation_id, t.step_number, t.action_type, t.action_target_id = f[1], f[2], f[3], f[4]
    local miss = {}
    local function need(name, present, add)
      if not present then miss[#miss + 1] = name; if fix then add() end end
    end
    local code = agent_indices(t, id, f, P[2], P[3], P[4], P[5], P[8], cell, ixkind, need)
    local ks = render(P[6], t)
    need('sim_step', call('SISMEMBER', ks, id) == 1, function() call('SADD', ks, id) end)
    if code then
      local kg = render(P[9], t)
      local sc = call('ZSCORE', kg, id)
      need('sim_grid', sc and tonumber(sc) == code, function() call('ZADD', kg, code, id) end)
    end
    local kz = render(P[7], t)
    need('sim_steps', call('ZSCORE', kz, f[2]), function() call('ZADD', kz, f[2], f[2]) end)
    out[#out + 1] = id; out[#out + 1] = t.agent_id; out[#out + 1] = f[1]
    out[#out + 1] = f[3]; out[#out + 1] = f[2]; out[#out + 1] = table.concat(miss, ',')
  end
end
return out
