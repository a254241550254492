-- lib/integrity_common.lua: a part included by scripts (see agentmem/lua/loader.py).
--!include lib/sim_agents.lua

local call, unpack = redis.call, unpack
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
-- the hash of a simulation-level member {agent_id}-{step}-{rest}, found as SIM_FETCH
-- finds it: every split before '-<digits>-', nearest the end first. Returns the key
-- of the existing hash (or nil) and its agent (or the first candidate agent).
local function sim_hash(id, prefix, middle, suffix)
  local agents = sim_agents(id, '')
  for _, agent in ipairs(agents) do
    local key = prefix .. agent .. middle .. id .. suffix
    if call('EXISTS', key) == 1 then return key, agent end
  end
  return nil, agents[1]
end
local function read_filter(pos)
  local n = tonumber(ARGV[pos])
  if n == 0 then return nil end
  local f = {}
  for i = pos + 1, pos + n do f[ARGV[i]] = true end
  return f
end
local function chunked(cmd, key, list, pre)
  for i = 1, #list, 1000 do
    if pre then call(cmd, key, pre, unpack(list, i, math.min(i + 999, #list)))
    else call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
  end
end
