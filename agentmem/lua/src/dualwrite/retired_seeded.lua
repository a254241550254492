#!lua
-- retired_seeded: mark a Redis seeded (the retired marks hold what the archive knows), if
-- it kept the marks this seeding wrote: the seeding's sentinel, set before its first
-- mark, still holds its token (a restart in between took both).
-- KEYS: KEYS[1] the sentinel, KEYS[2] the marker (agentmem:ids, one slot with the sentinel)
-- ARGV: ARGV[1] the seeding's token
-- Reply: 1 when the marker is set, 0 when the sentinel is gone or another's (seed again)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], 'seeded')
redis.call('DEL', KEYS[1])
return 1
