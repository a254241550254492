#!lua
-- cluster_integrity_agent: an agent's hashes against its indices, in its slot.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, patterns, grid cell, types/targets kind, 8 hash field names, agent id, action ids
-- Reply: per hash {id, simulation, type, step, age, missing, grid code}
-- ARGV: mode, patterns (action timeline types targets rewards grid, literal braces
-- once), grid cell size, the kind of the types and targets keys ('z' sorted sets,
-- layout 4; 's' sets), the action hash's field names of simulation_id, step_number,
-- action_type, action_target_id, reward, position_x, position_y and stored_at (the
-- layout's names), agent id, action ids. For each existing hash: is it in each
-- agent-level index it belongs in? fix: adds it. Returns per hash {id, simulation,
-- type, step, age (s), missing families (comma separated), grid code ('' none)}.
local call = redis.call
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
--!include lib/agent_indices.lua

local now = tonumber(call('TIME')[1])
local out = {}
local cell = tonumber(ARGV[8])
local ixkind = ARGV[9]
local F = {unpack(ARGV, 10, 17)}
for i = 19, #ARGV do
  local t = {agent_id = ARGV[18], action_id = ARGV[i]}
  local id = ARGV[i]
  local f = redis.pcall('HMGET', render(ARGV[2], t), unpack(F))
  if f.err == nil and f[1] and f[2] and f[3] then
    t.simulation_id, t.step_number, t.action_type, t.action_target_id = f[1], f[2], f[3], f[4]
    local miss = {}
    local function need(name, present, add)
      if not present then miss[#miss + 1] = name; if fix then add() end end
    end
    local code = agent_indices(t, id, f, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], cell,
                               ixkind, need)
    local age = f[8] and (now - tonumber(f[8])) or 1e9
    out[#out + 1] = id; out[#out + 1] = f[1]; out[#out + 1] = f[3]; out[#out + 1] = f[2]
    out[#out + 1] = tostring(age); out[#out + 1] = table.concat(miss, ',')
    out[#out + 1] = code and string.format('%.17g', code) or ''
  end
end
return out
