#!lua flags=no-writes
-- sim_fetch: a simulation-level index resolved to its agents' hashes.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: source key, 'set'|'list', start, stop, prefix, middle, suffix, limit, step, simulation id, simulation id field (absent: 'simulation_id')
-- Reply: the HGETALL of each id whose hash exists and is of the simulation, in index order, at most limit
--!include lib/sim_agents.lua
--!include lib/bytewise.lua

-- Resolve action ids of a simulation-level index to their agent's hash and fetch them.
-- ARGV: source key, 'set'|'list', start, stop, prefix, middle, suffix, limit (-1: all),
-- step ('' when unknown), simulation id ('': any; else a hash of another simulation
-- under an id of this one is skipped), simulation id field (the hash field that holds
-- it, as the layout names it). An id reads {agent_id}-{step}-{rest} where rest has no '-'
-- (agentmem refuses '-' in action types), so the agent is what precedes the last two
-- '-'. Ids written by other code may have '-' in the type: every other split before
-- '-<step>-' is then tried, nearest the end first.
local src, kind = ARGV[1], ARGV[2]
local start, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix, middle, suffix = ARGV[5], ARGV[6], ARGV[7]
local limit, step, sim = tonumber(ARGV[8]), ARGV[9], ARGV[10] or ''
local sf = ARGV[11]
local ids
if kind == 'set' then
  ids = redis.call('SMEMBERS', src)
  sort_ids(ids)
else
  ids = redis.call('LRANGE', src, start, stop)
end
local out = {}
for _, id in ipairs(ids) do
  if limit >= 0 and #out >= limit then break end
  for _, agent in ipairs(sim_agents(id, step)) do
    local h = redis.call('HGETALL', prefix .. agent .. middle .. id .. suffix)
    if #h > 0 and of_sim(h, sim, sf) then out[#out + 1] = h; break end
  end
end
return out
