#!lua
-- evict_im: delete IM entries (archived before).
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: IM hash prefix, suffix, IM timeline, ids...
-- Reply: the number of hashes deleted
-- ARGV: IM hash prefix, suffix, IM timeline, ids... Deletes each IM hash and its
-- timeline entry. Returns the number of hashes deleted.
local ipre, isuf, itl = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TYPE', itl)['ok']
if t ~= 'none' and t ~= 'zset' then return redis.error_reply('WRONGTYPE ' .. itl) end
local gone = 0
for i = 4, #ARGV do
  gone = gone + redis.call('DEL', ipre .. ARGV[i] .. isuf)
  redis.call('ZREM', itl, ARGV[i])
end
return gone
