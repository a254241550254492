#!lua
-- integrity_list: one range of a simulation list: entries whose hash is gone.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, list key, start, count, prefix, middle, suffix, nfilter, filter...
-- Reply: {entries read, {orphans}, {live ids}}; fix removes the orphans
--!include lib/integrity_common.lua

-- ARGV: mode, list key, start, count, prefix, middle, suffix, nfilter, filter...
-- Reads one range; returns {entries read, {orphans}, {live ids}}; fix: removes the
-- orphans (replaced by a marker no id can equal, then one LREM).
local key, start = ARGV[2], tonumber(ARGV[3])
local filter = read_filter(8)
local ids = call('LRANGE', key, start, start + tonumber(ARGV[4]) - 1)
local mark = '\0agentmem:integrity:removed'
local orphans, live = {}, {}
for i, id in ipairs(ids) do
  local hk, agent = sim_hash(id, ARGV[5], ARGV[6], ARGV[7])
  if filter == nil or (agent ~= nil and filter[agent]) then
    if hk then live[#live + 1] = id
    else
      orphans[#orphans + 1] = id
      if fix then call('LSET', key, start + i - 1, mark) end
    end
  end
end
if fix and #orphans > 0 then call('LREM', key, #orphans, mark) end
return {#ids, orphans, live}
