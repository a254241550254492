#!lua
-- claim: record a setting once (the grid cell).
-- KEYS: KEYS[1] the setting's key
-- ARGV: ARGV[1] the value to record when none is
-- Reply: the recorded value, or nil when ARGV[1] was recorded now
-- KEYS[1] a setting's key, ARGV[1] a value: the recorded value, recording ARGV[1]
-- when there is none (then nil). SET NX GET, without a client's reply conversion.
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return false
