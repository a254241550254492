#!lua
-- cluster_integrity_counters: rewrite a simulation's counters.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: list key, counters key, list length, (type, count) pairs
-- Reply: 1 written, 0 skipped (the list changed meanwhile)
-- ARGV: list key, counters key, list length the counts were made at, then (type, count)
-- pairs. Rewrites the counters when the list still has that length (no write part ran
-- meanwhile); returns 1 when written, 0 when skipped.
local call = redis.call
if call('LLEN', ARGV[1]) ~= tonumber(ARGV[3]) then return 0 end
call('DEL', ARGV[2])
for i = 4, #ARGV, 2 do call('HSET', ARGV[2], ARGV[i], ARGV[i + 1]) end
return 1
