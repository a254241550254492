#!lua flags=no-writes
-- evict_plan: which IM entries leave when over capacity.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set, importance field, simulation id field, capacity, weight, most (optional: victims named at most)
-- Reply: {id, simulation id, ...} of the lowest-ranked entries over capacity
--!include lib/bytewise.lua
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set, the IM hash fields of the
-- importance and of the simulation id (as the layout names them), capacity, weight.
-- Ranks the agent's unpinned IM entries by (step + importance * weight, importance, id)
-- and returns the lowest ones over the capacity as {id, simulation id, ...}.
local ipre, isuf, itl, pins = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local impf, simf = ARGV[5], ARGV[6]
local cap, weight = tonumber(ARGV[7]), tonumber(ARGV[8])
local most = tonumber(ARGV[9] or '') or math.huge
local size = redis.call('ZCARD', itl)
if size - cap <= 0 then return {} end  -- within capacity whatever is pinned: O(1)
local pinned = {}
for _, id in ipairs(redis.call('SMEMBERS', pins)) do pinned[id] = true end

local function row(id, score)
  local h = redis.call('HMGET', ipre .. id .. isuf, impf, simf)
  local imp = tonumber(h[1]) or 0
  return {tonumber(score) + imp * weight, imp, id, h[2] or ''}
end

-- the entries to rank: all of them; or, without an importance weight (the rank is the
-- step first), only the oldest: whole steps from the start of the timeline until the
-- unpinned ones exceed what must leave, the rest being younger than every one of them
local rows, excess = {}, nil
if weight == 0 then
  local unpinned = 0
  for id, _ in pairs(pinned) do
    if redis.call('ZSCORE', itl, id) then unpinned = unpinned - 1 end
  end
  excess = math.min(size + unpinned - cap, most)
  if excess <= 0 then return {} end
  local start, last, CH = 0, nil, 256
  while true do
    local r = redis.call('ZRANGE', itl, start, start + CH - 1, 'WITHSCORES')
    if #r == 0 then break end
    local done = false
    for i = 1, #r, 2 do
      if #rows >= excess and r[i + 1] ~= last then done = true; break end
      if not pinned[r[i]] then rows[#rows + 1] = row(r[i], r[i + 1]) end
      last = r[i + 1]
    end
    if done then break end
    start = start + CH
  end
else
  local r = redis.call('ZRANGE', itl, 0, -1, 'WITHSCORES')
  for i = 1, #r, 2 do
    if not pinned[r[i]] then rows[#rows + 1] = row(r[i], r[i + 1]) end
  end
  excess = math.min(#rows - cap, most)
  if excess <= 0 then return {} end
end
table.sort(rows, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  if x[2] ~= y[2] then return x[2] < y[2] end
  return blt(x[3], y[3])
end)
local out = {}
for i = 1, excess do out[#out + 1] = rows[i][3]; out[#out + 1] = rows[i][4] end
return out
