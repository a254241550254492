#!lua
-- rename_fields: one hash's fields renamed in one step (revision 0004, layout 2 <-> 3).
-- KEYS: KEYS[1] the action or IM hash
-- ARGV: pairs: ARGV[2i-1] a field's name before, ARGV[2i] its name after
-- Reply: 1 when a field was renamed; 0 when the hash holds none of the names before
-- (already renamed, or gone)
-- The new fields are set and the old ones deleted on the existing hash, which keeps
-- its TTL; fields of no pair are left as they are. A name after that the hash already
-- holds is overwritten by the value of the name before (the hash is the old layout's).
local vals = redis.call('HMGET', KEYS[1], unpack(ARGV, 1, #ARGV))
local set, del = {}, {}
for i = 1, #ARGV, 2 do
  local v = vals[i]
  if v then
    set[#set + 1] = ARGV[i + 1]
    set[#set + 1] = v
    del[#del + 1] = ARGV[i]
  end
end
if #del == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('HDEL', KEYS[1], unpack(del))
return 1
