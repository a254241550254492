#!lua
-- retired_seed: raise one agent's retired marks to what the archive holds.
-- KEYS: KEYS[1] the agent's retired marks (a hash)
-- ARGV: ARGV[1] the highest .r suffix archived (0: none), then simulation id, step pairs
-- Reply: 1
-- Marks and the counter only go up: a mark Redis has that is higher is kept.
local function raise(field, value)
  local cur = tonumber(redis.call('HGET', KEYS[1], field))
  if not cur or tonumber(value) > cur then redis.call('HSET', KEYS[1], field, value) end
end
if tonumber(ARGV[1]) > 0 then raise(':seq', ARGV[1]) end
for i = 2, #ARGV, 2 do raise(ARGV[i], ARGV[i + 1]) end
return 1
