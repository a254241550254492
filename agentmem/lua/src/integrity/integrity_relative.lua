#!lua
-- integrity_relative: refill an agent's relative index from its timeline after a repair.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, relative index key, timeline key, size (the store's relative_index_size)
-- Reply: the number of entries added (fix) or that would be (check)
-- The repair removes orphans from the timeline and from the relative index (an action
-- whose hash expired): the relative index then holds fewer than the newest entries of
-- the timeline, which it must hold (docs/keyspace.md). It gets the timeline's next ones
-- back, as a delete refills it (lib/refill.lua), up to size.
--!include lib/refill.lua
local rel, tl, size = ARGV[2], ARGV[3], tonumber(ARGV[4])
for _, key in ipairs({rel, tl}) do
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= 'zset' then return 0 end
end
local have = redis.call('ZCARD', rel)
local add = math.max(0, math.min(size, redis.call('ZCARD', tl)) - have)
if ARGV[1] == 'fix' and add > 0 then refill(rel, tl, size) end
return add
