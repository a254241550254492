#!lua
-- outbox_append: list stored records' keys in a dual writer's outbox on a Redis Cluster.
-- KEYS: KEYS[1] the outbox list, KEYS[2] the registry set, KEYS[3] the writer's lease
-- ARGV: ARGV[1] the lease's time to live in ms, ARGV[2..] the records' hash keys, in write order
-- Reply: the outbox's length
-- On one server the write script appends to the outbox in the records' own atomic step
-- (its group 'O'). On a cluster the outbox's slot is not the records' (they are in their
-- agent's slot), so the writer appends their keys in this call, right after the write
-- and before it reports the records stored (docs/durability.md).
local CH = 1000
local n = 0
for i = 2, #ARGV, CH do
  n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + CH - 1, #ARGV)))
end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
return n
