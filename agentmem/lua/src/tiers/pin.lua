#!lua
-- pin: pin or unpin one action.
-- KEYS: KEYS[1] the agent's pinned set, KEYS[2] the STM hash, KEYS[3] the IM hash
-- ARGV: '1' pin | '0' unpin, action id, STM TTL ('' none), IM TTL ('' none)
-- Reply: where the action is: 1 STM, 2 IM, 0 in neither (then a pin changes nothing)
-- Pin: adds the id to the set and takes the TTL off both hashes. Unpin: removes
-- it and gives each existing hash its tier's TTL again. Atomic.
local pinned, stm, im = KEYS[1], KEYS[2], KEYS[3]
local where = 0
if redis.call('EXISTS', stm) == 1 then where = 1 elseif redis.call('EXISTS', im) == 1 then
  where = 2
end
if ARGV[1] == '1' then
  if where == 0 then return 0 end
  redis.call('SADD', pinned, ARGV[2])
  redis.call('PERSIST', stm)
  redis.call('PERSIST', im)
else
  redis.call('SREM', pinned, ARGV[2])
  if ARGV[3] ~= '' then redis.call('EXPIRE', stm, ARGV[3]) end
  if ARGV[4] ~= '' then redis.call('EXPIRE', im, ARGV[4]) end
end
return where
