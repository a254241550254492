-- lib/refill.lua: a part included by scripts (see agentmem/lua/loader.py).
-- A capped sorted set that holds the highest entries of another (the relative index,
-- the newest of the timeline: docs/keyspace.md) and lost some of them (a delete, a move
-- to IM): refill(key, source, size) adds the source's next entries, in the order of
-- ZRANGE ... REV (score, then member, descending: the order the write's ZREMRANGEBYRANK
-- trim keeps; ZRANGE, not ZREVRANGE: the minimal ACL of docs/security.md grants ZRANGE),
-- until key holds size entries or the source has no more. key held the highest entries
-- of source, as many as it holds now, once the same members left both.
local function refill(key, source, size)
  local have = redis.call('ZCARD', key)
  if have >= size then return end
  local rows = redis.call('ZRANGE', source, have, size - 1, 'REV', 'WITHSCORES')
  if #rows == 0 then return end
  -- ZADD score member ..., at most 500 pairs a call (unpack's stack)
  for s = 1, #rows, 1000 do
    local args = {}
    for i = s, math.min(s + 998, #rows - 1), 2 do
      args[#args + 1] = rows[i + 1]
      args[#args + 1] = rows[i]
    end
    redis.call('ZADD', key, unpack(args))
  end
end
