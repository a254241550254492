#!lua
-- retired_seeded: mark a Redis seeded (its retired marks hold what the archive knows) if the seeding's sentinel is still there.
-- KEYS: KEYS[1] the sentinel, KEYS[2] the marker (agentmem:ids, one slot with the sentinel)
-- ARGV: ARGV[1] the seeding's token
-- Reply: 1 when the marker is set (to the token), 0 when the sentinel is gone or another's (seed again)
-- The sentinel, set before the seeding's first mark, holds its token; a restart in
-- between took it with the marks. The marker holds the token: a writer's restart guard
-- (backends/restarts.py) compares it on each new connection.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
