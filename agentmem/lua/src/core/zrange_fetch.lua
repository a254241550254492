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
-- by score, in pages: the next page starts at the last score read, past the members of
-- that score already read (a cursor, not a rank offset, which would cost its length);
-- scores compare as numbers: the server writes one score as '0' or '-0' (ties)
local tied = 0
while true do
  local page
  if rev then page = redis.call('ZRANGE', zkey, hi, lo, 'BYSCORE', 'REV', 'LIMIT', tied, CH,
                                'WITHSCORES')
  else page = redis.call('ZRANGE', zkey, lo, hi, 'BYSCORE', 'LIMIT', tied, CH, 'WITHSCORES') end
  local n = #page / 2
  for k = 1, n do
    if limit >= 0 and #out >= limit then return out end
    fetch_into(out, prefix .. page[2 * k - 1] .. suffix)
  end
  if n < CH then return out end
  local last = page[2 * n]
  local same = 0
  for k = n, 1, -1 do
    if tonumber(page[2 * k]) == tonumber(last) then same = same + 1 else break end
  end
  if rev then
    if tonumber(last) == tonumber(hi) then tied = tied + same else tied = same end
    hi = last
  else
    if tonumber(last) == tonumber(lo) then tied = tied + same else tied = same end
    lo = last
  end
end
