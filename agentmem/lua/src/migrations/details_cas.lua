#!lua
-- details_cas: compare-and-set of one action hash's details field (revision 0003).
-- KEYS: KEYS[1] the action hash
-- ARGV: ARGV[1] the details as read, ARGV[2] the details to write
-- Reply: 1 when written; 0 when the field no longer holds ARGV[1] (or the hash is gone)
-- HSET on an existing hash keeps its TTL.
local v = redis.call('HGET', KEYS[1], 'details')
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'details', ARGV[2])
return 1
