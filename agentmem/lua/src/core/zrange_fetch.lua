#!lua flags=no-writes
-- zrange_fetch: a sorted index read by score or rank, with the hashes.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: zkey, prefix, suffix, by ('score'|'rank'), lo, hi, rev, limit (-1: all)
-- Reply: the HGETALL of each member whose hash exists, in order, at most limit
--!include lib/fetch.lua

-- ARGV: zkey, prefix, suffix, by ('score'|'rank'), lo, hi, rev ('1'|'0'), limit (-1: all)
local zkey, prefix, suffix, by = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lo, hi, rev, limit = ARGV[5], ARGV[6], ARGV[7] == '1', tonumber(ARGV[8])
local out = {}
local CH = 256
if by == 'rank' then
  local start, stop = tonumber(lo), tonumber(hi)
  local ids
  if rev then ids = redis.call('ZRANGE', zkey, start, stop, 'REV')
  else ids = redis.call('ZRANGE', zkey, start, stop) end
  for _, id in ipairs(ids) do
    if limit >= 0 and #out >= limit then break end
    fetch_into(out, prefix .. id .. suffix)
  end
  -- missing hashes (expired) are skipped; keep going past the window to fill the limit
  local nextrank = stop + 1
  while limit >= 0 and #out < limit and #ids > 0 do
    if rev then ids = redis.call('ZRANGE', zkey, nextrank, nextrank + CH - 1, 'REV')
    else ids = redis.call('ZRANGE', zkey, nextrank, nextrank + CH - 1) end
    for _, id in ipairs(ids) do
      if #out >= limit then break end
      fetch_into(out, prefix .. id .. suffix)
    end
    nextrank = nextrank + CH
  end
  return out
end
local offset = 0
while true do
  local ids
  if rev then ids = redis.call('ZRANGE', zkey, hi, lo, 'BYSCORE', 'REV', 'LIMIT', offset, CH)
  else ids = redis.call('ZRANGE', zkey, lo, hi, 'BYSCORE', 'LIMIT', offset, CH) end
  for _, id in ipairs(ids) do
    if limit >= 0 and #out >= limit then return out end
    fetch_into(out, prefix .. id .. suffix)
  end
  if #ids < CH then return out end
  offset = offset + CH
end
