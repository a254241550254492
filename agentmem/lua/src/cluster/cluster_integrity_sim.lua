#!lua
-- cluster_integrity_sim: a simulation's indices against its actions, in its slot.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, patterns, simulation id, (id, step, type, listed, grid code) quintuples
-- Reply: per id {id, missing families}
-- ARGV: mode, patterns (sim_actions sim_step sim_steps sim_by_type sim_grid, literal
-- braces once), simulation id, then (action id, step, type, listed, grid code)
-- quintuples; listed = '1' when the client saw the id in the simulation list, the
-- code '' for an action without a position. Returns per id {id, missing families};
-- fix adds what is missing. The simulation-level part of a write is one
-- script, so an id missing from the list also lacks its counter increment: fix adds both.
local call = redis.call
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
local out = {}
for i = 8, #ARGV, 5 do
  local id, step, typ, code = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 4]
  local t = {simulation_id = ARGV[7], step_number = step}
  local miss = {}
  local lk = render(ARGV[2], t)
  if ARGV[i + 3] ~= '1' and not call('LPOS', lk, id) then
    miss[#miss + 1] = 'sim_actions'
    if fix then
      call('RPUSH', lk, id)
      call('HINCRBY', render(ARGV[5], t), typ, 1)
    end
  end
  local ks = render(ARGV[3], t)
  if call('SISMEMBER', ks, id) == 0 then
    miss[#miss + 1] = 'sim_step'
    if fix then call('SADD', ks, id) end
  end
  local kz = render(ARGV[4], t)
  if not call('ZSCORE', kz, step) then
    miss[#miss + 1] = 'sim_steps'
    if fix then call('ZADD', kz, step, step) end
  end
  if code ~= '' then
    local kg = render(ARGV[6], t)
    local sc = call('ZSCORE', kg, id)
    if not (sc and tonumber(sc) == tonumber(code)) then
      miss[#miss + 1] = 'sim_grid'
      if fix then call('ZADD', kg, code, id) end
    end
  end
  if #miss > 0 then out[#out + 1] = id; out[#out + 1] = table.concat(miss, ',') end
end
return out
