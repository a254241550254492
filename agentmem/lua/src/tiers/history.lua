#!lua flags=no-writes
-- history: an agent's STM and IM timelines as one sequence.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: STM timeline, prefix, suffix, IM timeline, prefix, suffix, min, max, rev, limit
-- Reply: {tier, hash, tier, hash, ...}, tier 's' or 'i', ordered by (step, id), at most
-- limit pairs
--!include lib/bytewise.lua
-- ARGV: STM timeline, STM prefix, suffix, IM timeline, IM prefix, suffix,
-- min, max, rev ('1'|'0'), limit (-1: all). Both timelines are read by score (step) in
-- pages, through one cursor each, and merged by (step, id) as they are read: each row
-- taken is fetched at once, an id whose hash is gone (expired) is skipped and the tier
-- that supplied it read on, so the reply holds the first `limit` rows whose hash exists.
-- A page asks for no more rows than the limit still lacks (at most CH), so the work
-- follows the limit plus the gone ids met, not the length of the timelines.
local tl, hpre, hsuf, itl, ipre, isuf = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local lo, hi, rev, limit = ARGV[7], ARGV[8], ARGV[9] == '1', tonumber(ARGV[10])
local CH = 256
local out = {}
if limit == 0 then return out end
local found = 0

local function cursor(key, tier, pre, suf)
  return {key = key, tier = tier, pre = pre, suf = suf, lo = lo, hi = hi, tied = 0,
          rows = {}, pos = 1, ended = false}
end

-- the next page of c: from its last score read, past the members of that score already
-- read (scores compare as numbers: the server writes one score as '0' or '-0')
local function read_page(c)
  local size = CH
  if limit > 0 and limit - found < CH then size = limit - found end
  local page
  if rev then page = redis.call('ZRANGE', c.key, c.hi, c.lo, 'BYSCORE', 'REV', 'LIMIT',
                                c.tied, size, 'WITHSCORES')
  else page = redis.call('ZRANGE', c.key, c.lo, c.hi, 'BYSCORE', 'LIMIT', c.tied, size,
                         'WITHSCORES') end
  local n = #page / 2
  c.rows, c.pos = {}, 1
  for k = 1, n do c.rows[k] = {tonumber(page[2 * k]), page[2 * k - 1]} end
  if n < size then c.ended = true; return end
  local last = page[2 * n]
  local same = 0
  for k = n, 1, -1 do
    if tonumber(page[2 * k]) == tonumber(last) then same = same + 1 else break end
  end
  if rev then
    if tonumber(last) == tonumber(c.hi) then c.tied = c.tied + same else c.tied = same end
    c.hi = last
  else
    if tonumber(last) == tonumber(c.lo) then c.tied = c.tied + same else c.tied = same end
    c.lo = last
  end
end

-- the row c would give next ({score, member}), or nil when its timeline has no more
local function head(c)
  if c.pos > #c.rows then
    if c.ended then return nil end
    read_page(c)
    if c.pos > #c.rows then return nil end
  end
  return c.rows[c.pos]
end

-- whether row x comes before row y: by score, then member (bytewise), both reversed
local function before(x, y)
  if x[1] ~= y[1] then
    if rev then return x[1] > y[1] end
    return x[1] < y[1]
  end
  if rev then return blt(y[2], x[2]) end
  return blt(x[2], y[2])
end

local stm, im = cursor(tl, 's', hpre, hsuf), cursor(itl, 'i', ipre, isuf)
while limit < 0 or found < limit do
  local a, b = head(stm), head(im)
  local c, row
  if a == nil and b == nil then break end
  -- one id in both tiers (written so by hand): STM's first
  if b == nil or (a ~= nil and not before(b, a)) then c, row = stm, a else c, row = im, b end
  c.pos = c.pos + 1
  local h = redis.call('HGETALL', c.pre .. row[2] .. c.suf)
  if #h > 0 then
    out[#out + 1] = c.tier
    out[#out + 1] = h
    found = found + 1
  end
end
return out
