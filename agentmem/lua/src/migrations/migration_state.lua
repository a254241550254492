#!lua
-- migration_state: one atomic step of a layout migration's state.
-- KEYS: the layout key, the revision key, the progress hash (agentmem:layout[:revision|:progress])
-- ARGV: layout value ('' leaves it), revision ('' leaves it), then the progress hash's field, value pairs
-- Reply: 1
-- The progress hash is replaced, never merged (counters a revision reset are gone);
-- with no pairs it is deleted.
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1]) end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('DEL', KEYS[3])
if #ARGV > 2 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 3))
end
return 1
