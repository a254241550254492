#!lua
-- integrity_counts: a simulation's per-type counters against its actions.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, list key, start, stop, simulation id, counter key, prefix, middle, suffix, 2 field names, (type, count) pairs
-- Reply: 'count': {type, n, ...}; else {type, stored, true count, ...}
--!include lib/integrity_common.lua

-- ARGV: mode ('count'|'check'|'fix'), list key, start, stop, simulation id, counter
-- key, prefix, middle, suffix, the action hash's field names of simulation_id and
-- action_type (the layout's names), then (type, count) pairs to add. Counts the existing
-- action hashes of the simulation per type over one range of its list (ids counted
-- once). 'count' returns {type, n, ...}; otherwise compares with the counter hash
-- and returns {type, stored ('' absent), true count, ...} for each wrong field;
-- 'fix' rewrites those (a true count of 0 removes the field).
local mode, lk, sim, ck = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local counts, seen = {}, {}
for _, id in ipairs(call('LRANGE', lk, ARGV[3], ARGV[4])) do
  if not seen[id] then
    seen[id] = true
    local hk = sim_hash(id, ARGV[7], ARGV[8], ARGV[9])
    if hk then
      local f = call('HMGET', hk, ARGV[10], ARGV[11])
      if f[1] == sim and f[2] then counts[f[2]] = (counts[f[2]] or 0) + 1 end
    end
  end
end
for i = 12, #ARGV, 2 do counts[ARGV[i]] = (counts[ARGV[i]] or 0) + tonumber(ARGV[i + 1]) end
local out = {}
if mode == 'count' then
  for t, n in pairs(counts) do out[#out + 1] = t; out[#out + 1] = tostring(n) end
  return out
end
local stored, have = call('HGETALL', ck), {}
for i = 1, #stored, 2 do
  local t, v = stored[i], stored[i + 1]
  local want = counts[t] or 0
  have[t] = true
  if want == 0 or v ~= tostring(want) then
    out[#out + 1] = t; out[#out + 1] = v; out[#out + 1] = tostring(want)
    if fix then
      if want == 0 then call('HDEL', ck, t) else call('HSET', ck, t, want) end
    end
  end
end
for t, n in pairs(counts) do
  if not have[t] and n > 0 then
    out[#out + 1] = t; out[#out + 1] = ''; out[#out + 1] = tostring(n)
    if fix then call('HSET', ck, t, n) end
  end
end
return out
