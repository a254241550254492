#!lua
-- integrity_retire: remove an agent's timeline orphans, its retired marks raised first.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: timeline key, hash prefix, hash suffix, retired marks key, then (id, simulation id or '') pairs
-- Reply: the ids removed
-- For each id still in the timeline whose hash is still gone: the agent's retired mark
-- of the id's simulation ('': not known, then the field ':any', the mark of every
-- simulation, which the write script reads too) is raised to the entry's score (its
-- step), then the entry is removed, so that the id is never given again
-- (docs/keyspace.md, "Ids for the life of the data"; docs/integrity.md).
local tl, pre, suf, rk = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TYPE', rk)['ok']
if t ~= 'none' and t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. rk) end
local out = {}
for i = 5, #ARGV, 2 do
  local id, field = ARGV[i], ARGV[i + 1]
  if field == '' then field = ':any' end
  local step = redis.call('ZSCORE', tl, id)
  if step and redis.call('EXISTS', pre .. id .. suf) == 0 then
    local mark = tonumber(redis.call('HGET', rk, field))
    if not mark or tonumber(step) > mark then redis.call('HSET', rk, field, step) end
    redis.call('ZREM', tl, id)
    out[#out + 1] = id
  end
end
return out
