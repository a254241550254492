#!lua flags=no-writes
-- evict_plan: which IM entries leave when over capacity.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set, capacity, weight
-- Reply: {id, simulation_id, ...} of the lowest-ranked entries over capacity
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set, capacity, weight. Ranks the
-- agent's unpinned IM entries by (step + importance * weight, importance, id) and
-- returns the lowest ones over the capacity as {id, simulation_id, ...}.
local ipre, isuf, itl, pins = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cap, weight = tonumber(ARGV[5]), tonumber(ARGV[6])
local pinned = {}
for _, id in ipairs(redis.call('SMEMBERS', pins)) do pinned[id] = true end
local r = redis.call('ZRANGE', itl, 0, -1, 'WITHSCORES')
local rows = {}
for i = 1, #r, 2 do
  local id = r[i]
  if not pinned[id] then
    local h = redis.call('HMGET', ipre .. id .. isuf, 'importance', 'simulation_id')
    local imp = tonumber(h[1]) or 0
    rows[#rows + 1] = {tonumber(r[i + 1]) + imp * weight, imp, id, h[2] or ''}
  end
end
local excess = #rows - cap
if excess <= 0 then return {} end
table.sort(rows, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  if x[2] ~= y[2] then return x[2] < y[2] end
  return x[3] < y[3]
end)
local out = {}
for i = 1, excess do out[#out + 1] = rows[i][3]; out[#out + 1] = rows[i][4] end
return out
