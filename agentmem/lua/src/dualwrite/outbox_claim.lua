#!lua
-- outbox_claim: a drainer takes over the outbox of a writer that stopped.
-- KEYS: KEYS[1] the outbox list, KEYS[2] its claimed name, KEYS[3] the registry set, KEYS[4] the writer's lease
-- ARGV: ARGV[1] '1' to claim even a writer whose lease is alive, else '0'
-- Reply: 1 claimed (renamed to KEYS[2], which the registry now names); 0 nothing to claim (alive, or empty); -1 a claimed list is still there (drain it first)
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], KEYS[1])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('SREM', KEYS[3], KEYS[1])
return 1
