#!lua
-- outbox_unlock: release the drain lock if this drainer still holds it.
-- KEYS: KEYS[1] the drain lock
-- ARGV: ARGV[1] the drainer's token
-- Reply: 1 released, 0 held by another drainer (or expired)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
