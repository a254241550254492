#!lua flags=no-writes
-- relative_fetch: the action at a relative position.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: relative index key, timeline key, prefix, suffix, k (0 = newest)
-- Reply: {HGETALL} of that action, or an empty table
-- A position within the relative index reads it when the index is what it should be, the
-- newest entries of the timeline: its oldest entry is the timeline's n-th newest, n its
-- size (n entries of the timeline and the n-th newest the lowest: those n). Otherwise
-- (an index that a delete or a move left short and a write of an older step then
-- entered, as older agentmem versions left it: docs/queries.md) and past the index, the
-- same rank of the timeline.
local rel, tl, prefix, suffix, k = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local rank = -k - 1
local ids = {}
local n = redis.call('ZCARD', rel)
local src = tl
if k < n then
  local low, nth = redis.call('ZRANGE', rel, 0, 0), redis.call('ZRANGE', tl, -n, -n)
  if low[1] == nth[1] then src = rel end
end
ids = redis.call('ZRANGE', src, rank, rank)
if #ids == 0 then return {} end
local h = redis.call('HGETALL', prefix .. ids[1] .. suffix)
if #h == 0 then return {} end
return {h}
