#!lua
-- update: replace a stored record's fields and re-index what changed, atomically.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: one section (lib/unindex.lua), id_field, stamp_field, nfixed, nfixed triples (field, present '1'|'0', value), nh, nh hash args, ngroup, groups (code key n args, as the write's)
-- Reply: {'\0OK', the kept write time or ''}; {'\0MISSING'} when the hash does not exist; {'\0FIXED', field, stored value} when a fixed field differs; {'\0WRONGTYPE', key}
-- The old entries are rendered from the stored hash and removed, the hash replaced (its
-- write-time field and remaining TTL kept), the new entries added; a list entry of the same
-- key and member stays where it is; capped sorted sets are trimmed; a sorted set or set of
-- field values loses a value whose witness set became empty. Nothing is written on a refusal.
--!include lib/unindex.lua
local sec, pos = section(1)
local idf, stampf = ARGV[pos], ARGV[pos + 1]
local flat = redis.call('HGETALL', sec.key)
if #flat == 0 then return {'\0MISSING'} end
local h = as_map(flat)
local nfixed = tonumber(ARGV[pos + 2])
pos = pos + 3
for i = 1, nfixed do
  local f, present, v = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
  local stored = h[f]
  if (present == '1' and stored ~= v) or (present == '0' and stored ~= nil) then
    return {'\0FIXED', f, stored or ''}
  end
  pos = pos + 3
end
local nh = tonumber(ARGV[pos])
local hs, he = pos + 1, pos + nh
pos = he + 1
local ngroup = tonumber(ARGV[pos])
pos = pos + 1
local gpos = pos
local ops = entries(sec, h)
local check = {}
for _, op in ipairs(ops) do check[#check + 1] = op end
local listed = {}
local KIND = {Z = 'z', z = 'z', S = 's', s = 's', L = 'l', l = 'l', h = 'h'}
for g = 1, ngroup do
  local code, key, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local kind = KIND[string.sub(code, 1, 1)]
  check[#check + 1] = {kind, key}
  if code == 'L' then
    for i = pos + 3, pos + 2 + n do listed[key .. '\0' .. ARGV[i]] = true end
  end
  pos = pos + 3 + n
end
local bad = wrong_type(check)
if bad then return {'\0WRONGTYPE', bad} end
-- a list entry the new record keeps (same key, same member) stays in place
local skip = {}
for _, op in ipairs(ops) do
  if op[1] == 'l' and listed[op[2] .. '\0' .. op[3]] then skip[op[2] .. '\0' .. op[3]] = true end
end
unindex(ops, skip)
local ttl = redis.call('PTTL', sec.key)
local stamp = nil
if stampf ~= '' then stamp = h[stampf] end
redis.call('DEL', sec.key)
if stamp then
  redis.call('HSET', sec.key, idf, sec.id, stampf, stamp, unpack(ARGV, hs, he))
else
  redis.call('HSET', sec.key, idf, sec.id, unpack(ARGV, hs, he))
end
if ttl > 0 then redis.call('PEXPIRE', sec.key, ttl) end
pos = gpos
local caps = {}
for g = 1, ngroup do
  local code, key, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local c = string.sub(code, 1, 1)
  local s, e = pos + 3, pos + 2 + n
  pos = e + 1
  if c == 'h' then
    for i = s, e, 2 do redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1]) end
  elseif c == 'Z' or c == 'z' then
    redis.call('ZADD', key, unpack(ARGV, s, e))
    if #code > 1 then caps[key] = tonumber(string.sub(code, 2)) end
  elseif c == 'S' or c == 's' then
    redis.call('SADD', key, unpack(ARGV, s, e))
  else
    for i = s, e do
      if not skip[key .. '\0' .. ARGV[i]] then redis.call('RPUSH', key, ARGV[i]) end
    end
  end
end
for key, cap in pairs(caps) do redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1) end
drop_values(ops)
return {'\0OK', stamp or ''}
