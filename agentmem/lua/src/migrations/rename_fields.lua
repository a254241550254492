#!lua
-- rename_fields: one hash's fields renamed in one step (revision 0004, layout 2 <-> 3).
-- KEYS: KEYS[1] the action or IM hash
-- ARGV: n, then n names before, then the n names after (ARGV[1 + i] becomes ARGV[1 + n + i])
-- Reply: 1 when renamed; 0 when the hash holds none of the names before (already
-- renamed, or gone); -1 when it holds one of the names after besides (a field of
-- another program under a name the other layout uses): nothing is written
-- The new fields are set and the old ones deleted on the existing hash, which keeps
-- its TTL; fields of no pair are left as they are.
local n = tonumber(ARGV[1])
local old = redis.call('HMGET', KEYS[1], unpack(ARGV, 2, 1 + n))
local new = redis.call('HMGET', KEYS[1], unpack(ARGV, 2 + n, 1 + 2 * n))
local set, del = {}, {}
for i = 1, n do
  if old[i] then
    set[#set + 1] = ARGV[1 + n + i]
    set[#set + 1] = old[i]
    del[#del + 1] = ARGV[1 + i]
  end
end
if #del == 0 then return 0 end
for i = 1, n do
  if new[i] then return -1 end
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('HDEL', KEYS[1], unpack(del))
return 1
