#!lua flags=no-writes
-- relative_fetch: the action at a relative position.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: relative index key, timeline key, prefix, suffix, k (0 = newest)
-- Reply: {HGETALL} of that action, or an empty table
-- ARGV: relative index key, timeline key, prefix, suffix, k (0 = newest)
local rel, tl, prefix, suffix, k = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local rank = -k - 1
local ids = {}
if k < redis.call('ZCARD', rel) then ids = redis.call('ZRANGE', rel, rank, rank)
else ids = redis.call('ZRANGE', tl, rank, rank) end
if #ids == 0 then return {} end
local h = redis.call('HGETALL', prefix .. ids[1] .. suffix)
if #h == 0 then return {} end
return {h}
