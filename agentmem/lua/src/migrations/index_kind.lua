#!lua
-- index_kind: one chunk of a types or targets key's change between a set and a sorted set scored by step (revision 0005, layout 3 <-> 4).
-- KEYS: KEYS[1] the index key, KEYS[2] the temporary key it is built in (same hash tag), KEYS[3] the agent's timeline
-- ARGV: ARGV[1] 'z' (set -> sorted set) or 's' (sorted set -> set), ARGV[2] '1' write, '0' count only (dry run), ARGV[3] the SSCAN/ZSCAN cursor ('0': start), ARGV[4] the COUNT of a chunk, ARGV[5] and ARGV[6] the action hash key's text before and after the action id, ARGV[7] the action hash's field of the step
-- Reply: {state, cursor, members, orphans}: state 1 a chunk done, call again with the cursor; 2 done (the key replaced by the temporary one, its TTL kept); 3 done, no member had a step: the key deleted; 0 the key is already of the target type; -1 of neither type; -2 gone
-- The first chunk (cursor '0') deletes what a killed run left in the temporary key; each
-- chunk reads one SSCAN (ZSCAN) page of the index key and adds it to the temporary key,
-- which takes the index key's TTL; the last one replaces the index key with it in one
-- step (UNLINK, RENAME, the TTL the index key had). The index key itself is not written
-- before that, so a run killed between chunks leaves it as it was.
-- 'z': each member scored by the timeline's score of it, else by the step of its action
-- hash (digits only); a member with neither is an orphan and left out. members and orphans:
-- writing, those of the new key and those left out, in the reply of the last chunk (0
-- before); counting, those of the chunk's page (the key is read, never written).
local to_sorted, write, cursor = ARGV[1] == 'z', ARGV[2] == '1', ARGV[3]
local src = to_sorted and 'set' or 'zset'
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= src then
  if write and cursor ~= '0' then redis.call('UNLINK', KEYS[2]) end
  if t == 'none' then return {-2, '0', 0, 0} end
  return {t == (to_sorted and 'zset' or 'set') and 0 or -1, '0', 0, 0}
end
if write and cursor == '0' then redis.call('UNLINK', KEYS[2]) end

local function step(id)
  local s = redis.pcall('ZSCORE', KEYS[3], id)
  if type(s) == 'string' then return s end
  local n = redis.pcall('HGET', ARGV[5] .. id .. ARGV[6], ARGV[7])
  if type(n) == 'string' and string.match(n, '^%d+$') then return n end
  return nil
end

-- unpack takes a bounded number of values: add in slices
local function put(cmd, args)
  for i = 1, #args, 500 do
    redis.call(cmd, KEYS[2], unpack(args, i, math.min(i + 499, #args)))
  end
end

local page, add, orphans = nil, {}, 0
if to_sorted then
  page = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', ARGV[4])
  for _, id in ipairs(page[2]) do
    local s = step(id)
    if s then
      add[#add + 1] = s
      add[#add + 1] = id
    else
      orphans = orphans + 1
    end
  end
else
  page = redis.call('ZSCAN', KEYS[1], cursor, 'COUNT', ARGV[4])
  for i = 1, #page[2], 2 do add[#add + 1] = page[2][i] end
end
local nxt = page[1]
if not write then
  return {nxt == '0' and 2 or 1, nxt, to_sorted and #add / 2 or #add, orphans}
end
put(to_sorted and 'ZADD' or 'SADD', add)
local ttl = redis.call('PTTL', KEYS[1])
if nxt ~= '0' then
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  return {1, nxt, 0, 0}
end
local before = redis.call(to_sorted and 'SCARD' or 'ZCARD', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('UNLINK', KEYS[1])
  return {3, '0', 0, before}
end
local after = redis.call(to_sorted and 'ZCARD' or 'SCARD', KEYS[2])
redis.call('UNLINK', KEYS[1])
redis.call('RENAME', KEYS[2], KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return {2, '0', after, before - after}
