"""The Lua scripts of integrity on Redis Cluster (:mod:`agentmem.backends.clusterwalk`):
agent-level checks in each agent's slot, simulation-level checks in each
simulation's slot, and the recount of the type counters."""

from __future__ import annotations

from agentmem.lua.integrity import AGENT_INDICES
from agentmem.lua.scripts import Script

__all__ = ["AGENT_CHECK", "SET_COUNTERS", "SIM_CHECK", "SIM_ORPHANS"]


AGENT_CHECK = Script("cluster_integrity_agent", r"""#!lua
-- ARGV: mode, patterns (action timeline types targets rewards grid, literal braces
-- once), grid cell size, agent id, action ids. For each existing hash: is it in each
-- agent-level index it belongs in? fix: adds it. Returns per hash {id, simulation,
-- type, step, age (s), missing families (comma separated), grid code ('' none)}.
local call = redis.call
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
""" + AGENT_INDICES + r"""
local now = tonumber(call('TIME')[1])
local out = {}
local cell = tonumber(ARGV[8])
for i = 10, #ARGV do
  local t = {agent_id = ARGV[9], action_id = ARGV[i]}
  local id = ARGV[i]
  local f = redis.pcall('HMGET', render(ARGV[2], t), 'simulation_id', 'step_number',
                        'action_type', 'action_target_id', 'reward', 'position_x',
                        'position_y', 'stored_at')
  if f.err == nil and f[1] and f[2] and f[3] then
    t.simulation_id, t.step_number, t.action_type, t.action_target_id = f[1], f[2], f[3], f[4]
    local miss = {}
    local function need(name, present, add)
      if not present then miss[#miss + 1] = name; if fix then add() end end
    end
    local code = agent_indices(t, id, f, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], cell,
                               need)
    local age = f[8] and (now - tonumber(f[8])) or 1e9
    out[#out + 1] = id; out[#out + 1] = f[1]; out[#out + 1] = f[3]; out[#out + 1] = f[2]
    out[#out + 1] = tostring(age); out[#out + 1] = table.concat(miss, ',')
    out[#out + 1] = code and string.format('%.17g', code) or ''
  end
end
return out
""")

SIM_CHECK = Script("cluster_integrity_sim", r"""#!lua
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
""")


SIM_ORPHANS = Script("cluster_integrity_sim_orphans", r"""#!lua
-- ARGV: mode, list key, steps zset key, n, n list ids, then groups (step, step set key,
-- m, m ids). Ids the client found without a hash (in their agents' slots). fix: LREM
-- each list id, SREM each group's ids and ZREM a step whose set is left empty.
-- Returns the steps with an empty set (removed in fix mode).
local call = redis.call
local fix = ARGV[1] == 'fix'
local lk, zk = ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
if fix then
  for i = 5, 4 + n do call('LREM', lk, 0, ARGV[i]) end
end
local out = {}
local i = 5 + n
while i <= #ARGV do
  local step, sk, m = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local left = call('SCARD', sk)
  if fix then
    for j = i + 3, i + 2 + m do call('SREM', sk, ARGV[j]) end
    left = call('SCARD', sk)
  else
    left = left - m
  end
  if left <= 0 then
    out[#out + 1] = step
    if fix then call('ZREM', zk, step) end
  end
  i = i + 3 + m
end
return out
""")

SET_COUNTERS = Script("cluster_integrity_counters", r"""#!lua
-- ARGV: list key, counters key, list length the counts were made at, then (type, count)
-- pairs. Rewrites the counters when the list still has that length (no write part ran
-- meanwhile); returns 1 when written, 0 when skipped.
local call = redis.call
if call('LLEN', ARGV[1]) ~= tonumber(ARGV[3]) then return 0 end
call('DEL', ARGV[2])
for i = 4, #ARGV, 2 do call('HSET', ARGV[2], ARGV[i], ARGV[i + 1]) end
return 1
""")
