#!lua
-- outbox_ack: drop the keys an archiver has archived from the head of an outbox.
-- KEYS: KEYS[1] the outbox list, KEYS[2] the registry set, KEYS[3] the drain lock (optional)
-- ARGV: ARGV[1] the drain lock's token, ARGV[2] its new time to live in ms ('' both without KEYS[3]), ARGV[3..] the keys archived, as read from the head
-- Reply: 1 when dropped; 0 when the head is not what was read (the list was claimed meanwhile) or the lock is not held
-- Nothing is dropped that was not archived: a list renamed away by a drainer (its
-- head differs now) is left for that drainer. The lock, when held, is renewed. An
-- emptied outbox leaves the registry.
if KEYS[3] then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
local n = #ARGV - 2
if n > 0 then
  local head = redis.call('LRANGE', KEYS[1], 0, n - 1)
  if #head ~= n then return 0 end
  for i = 1, n do
    if head[i] ~= ARGV[i + 2] then return 0 end
  end
  redis.call('LTRIM', KEYS[1], n, -1)
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], KEYS[1]) end
return 1
