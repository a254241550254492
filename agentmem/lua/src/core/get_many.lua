#!lua flags=no-writes
-- get_many: the hashes of several ids.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: hash prefix, hash suffix, ids...
-- Reply: one HGETALL reply per id (empty when the hash is gone)
local prefix, suffix = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do out[#out + 1] = redis.call('HGETALL', prefix .. ARGV[i] .. suffix) end
return out
