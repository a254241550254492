#!lua
-- retired_seeding: take (or join) the seeding's sentinel of an empty Redis, unless a seeding finished already.
-- KEYS: KEYS[1] the sentinel, KEYS[2] the marker (agentmem:ids, one slot with the sentinel)
-- ARGV: ARGV[1] this seeding's token
-- Reply: {0, token} when the marker is set (a seeding finished: nothing taken; token: the
-- marker's), {1, false} when the sentinel was free and now holds ARGV[1] (seed), {1, token}
-- when a seeding is running (join it: token is its sentinel's)
-- One step: a seeding that finishes (retired_seeded.lua sets the marker and deletes the
-- sentinel at once) between a look at the marker and the sentinel's SET NX would leave
-- the sentinel free, and a second seeding would start and set the marker to its own token.
local marker = redis.call('GET', KEYS[2])
if marker then return {0, marker} end
return {1, redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET')}
