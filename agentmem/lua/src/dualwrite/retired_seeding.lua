#!lua
-- retired_seeding: take (or join) the seeding's sentinel, unless the marker changed since the caller looked.
-- KEYS: KEYS[1] the sentinel, KEYS[2] the marker (agentmem:ids, one slot with the sentinel)
-- ARGV: ARGV[1] this seeding's token, ARGV[2] the marker the caller saw ('' when missing)
-- Reply: {0, marker} when the marker is no longer what the caller saw (a seeding finished
-- since, or Redis lost it: nothing taken; marker false when missing), {1, false} when the
-- sentinel was free and now holds ARGV[1] (seed), {1, token} when a seeding is running
-- (join it: token is its sentinel's)
-- One step: a seeding that finishes (retired_seeded.lua sets the marker and deletes the
-- sentinel at once) between the caller's look at the marker and a SET NX of the sentinel
-- would leave the sentinel free, and a second seeding would start and set the marker to
-- its own token. On a cluster a master may keep its marker while another lost its own:
-- the caller saw it, and takes that master's sentinel while it is unchanged.
local marker = redis.call('GET', KEYS[2])
if (marker or '') ~= ARGV[2] then return {0, marker} end
return {1, redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET')}
