#!lua
-- evict_im: delete IM entries (archived before).
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set ('' none), ids...
-- Reply: the number of hashes deleted
-- ARGV: IM hash prefix, suffix, IM timeline, the agent's pinned set, ids... Deletes each
-- IM hash and its timeline entry, except pinned ids (pinned since the eviction was
-- planned), which stay. Returns the number of hashes deleted.
local ipre, isuf, itl, pins = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TYPE', itl)['ok']
if t ~= 'none' and t ~= 'zset' then return redis.error_reply('WRONGTYPE ' .. itl) end
local gone = 0
for i = 5, #ARGV do
  if pins == '' or redis.call('SISMEMBER', pins, ARGV[i]) == 0 then
    gone = gone + redis.call('DEL', ipre .. ARGV[i] .. isuf)
    redis.call('ZREM', itl, ARGV[i])
  end
end
return gone
