#!lua flags=no-writes
-- history: an agent's STM and IM timelines as one sequence.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: STM timeline, prefix, suffix, IM timeline, prefix, suffix, min, max, rev, limit
-- Reply: {tier, hash, tier, hash, ...}, tier 's' or 'i', ordered by (step, id)
--!include lib/sort_rows.lua
-- ARGV: STM timeline, STM prefix, suffix, IM timeline, IM prefix, suffix,
-- min, max, rev ('1'|'0'), limit (-1: all). Both timelines by score (step), merged
-- by (step, id); returns {tier, hash, tier, hash, ...} with tier 's' or 'i',
-- skipping ids whose hash is gone.
local tl, hpre, hsuf, itl, ipre, isuf = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local lo, hi, rev, limit = ARGV[7], ARGV[8], ARGV[9] == '1', tonumber(ARGV[10])
local rows = {}
local function take(key, tier)
  local r
  local a, b, extra = lo, hi, {}
  if rev then a, b, extra = hi, lo, {'REV'} end
  if limit >= 0 then extra[#extra + 1] = 'LIMIT'; extra[#extra + 1] = 0;
    extra[#extra + 1] = limit end
  r = redis.call('ZRANGE', key, a, b, 'BYSCORE', 'WITHSCORES', unpack(extra))
  for i = 1, #r, 2 do rows[#rows + 1] = {tonumber(r[i + 1]), r[i], tier} end
end
take(tl, 's')
take(itl, 'i')
sort_rows(rows, rev)
local out = {}
for _, row in ipairs(rows) do
  if limit >= 0 and #out >= 2 * limit then break end
  local key
  if row[3] == 's' then key = hpre .. row[2] .. hsuf else key = ipre .. row[2] .. isuf end
  local h = redis.call('HGETALL', key)
  if #h > 0 then out[#out + 1] = row[3]; out[#out + 1] = h end
end
return out
