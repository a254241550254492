#!lua flags=no-writes
-- set_sorted_fetch: a set index ordered by a sorted index, with the hashes.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: skey, zkey, prefix, suffix, rev, limit (-1: all), min ('' none), min_exclusive
-- Reply: the HGETALL of each member whose hash exists, in order, at most limit
--!include lib/fetch.lua
--!include lib/sort_rows.lua

-- ARGV: skey, zkey, prefix, suffix, rev ('1'|'0'), limit (-1: all), min ('' none), min_exclusive
local skey, zkey, prefix, suffix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rev, limit = ARGV[5] == '1', tonumber(ARGV[6])
local min = ARGV[7] ~= '' and tonumber(ARGV[7]) or nil
local excl = ARGV[8] == '1'
local ids = redis.call('SMEMBERS', skey)
local rows = {}
local CH = 1000
for i = 1, #ids, CH do
  local j = math.min(i + CH - 1, #ids)
  local sc = {}
  if zkey ~= '' then sc = redis.call('ZMSCORE', zkey, unpack(ids, i, j)) end
  for k = i, j do
    local s = sc[k - i + 1]
    local num = s and tonumber(s) or nil
    local keep = true
    if min then
      keep = num ~= nil and (num > min or (not excl and num == min))
    end
    if keep then rows[#rows + 1] = {num or -math.huge, ids[k]} end
  end
end
sort_rows(rows, rev)
local out = {}
for _, row in ipairs(rows) do
  if limit >= 0 and #out >= limit then break end
  fetch_into(out, prefix .. row[2] .. suffix)
end
return out
