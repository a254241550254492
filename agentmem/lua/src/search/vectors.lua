#!lua flags=no-writes
-- vectors: the type and embedding of several actions.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: hash prefix, suffix, type field, embedding field, ids...
-- Reply: {type, embedding, ...}, false where absent
-- ARGV: hash prefix, hash suffix, type field, embedding field, ids...
-- Returns {type, embedding, type, embedding, ...}, false where absent.
local pre, suf, tf, ef = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 5, #ARGV do
  local h = redis.call('HMGET', pre .. ARGV[i] .. suf, tf, ef)
  out[#out + 1] = h[1]
  out[#out + 1] = h[2]
end
return out
