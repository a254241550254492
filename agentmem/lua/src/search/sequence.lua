#!lua flags=no-writes
-- sequence: an agent's actions over its timelines, for sequence analytics.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: min, max, limit, newest, then per timeline: tier, key, prefix, suffix, type field, reward field
-- Reply: {tier, id, step, type, reward, ...} per action whose hash exists, merged by (step, id), at most limit
--!include lib/bytewise.lua
-- ARGV: min, max, limit (-1: all; the newest when newest = '1'), newest ('1'|'0'),
-- then per timeline: tier letter, timeline key, hash prefix, hash suffix, and the hash
-- fields of the action type and the reward (as the tier's hashes name them).
-- Returns {tier, id, step, type, reward, ...} per action whose hash exists, the
-- timelines merged in (step, id) order (newest first when newest = '1'; one id in two
-- timelines: the earlier timeline's first, as history does); reward false when absent.
-- Without a limit each timeline's range is read whole. With one, the timelines are read
-- by score in pages, through one cursor each, and merged as they are read (as
-- tiers/history.lua does): each row taken is fetched at once, an id whose hash is gone
-- (expired) is skipped and the timeline that supplied it read on, so the reply holds
-- the first `limit` actions whose hash exists. A page asks for no more rows than the
-- limit still lacks (at most CH), so the work follows the limit plus the gone ids met,
-- not the length of the timelines.
local lo, hi, limit, newest = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local CH = 256
local out = {}
if limit == 0 then return out end
local found = 0

local cursors = {}
for t = 5, #ARGV, 6 do
  cursors[#cursors + 1] = {tier = ARGV[t], key = ARGV[t + 1], pre = ARGV[t + 2],
                           suf = ARGV[t + 3], tf = ARGV[t + 4], rf = ARGV[t + 5],
                           lo = lo, hi = hi, tied = 0, page = {}, n = 0, pos = 1,
                           score = nil, ended = false}
end

-- the next page of c: from its last score read, past the members of that score already
-- read (scores compare as numbers: the server writes one score as '0' or '-0'); without
-- a limit, the whole range at once. c.page is the ZRANGE reply (member, score, ...).
local function read_page(c)
  local size = CH
  if limit > 0 and limit - found < CH then size = limit - found end
  local page
  if limit < 0 then
    if newest then page = redis.call('ZRANGE', c.key, c.hi, c.lo, 'BYSCORE', 'REV', 'WITHSCORES')
    else page = redis.call('ZRANGE', c.key, c.lo, c.hi, 'BYSCORE', 'WITHSCORES') end
  elseif newest then page = redis.call('ZRANGE', c.key, c.hi, c.lo, 'BYSCORE', 'REV',
                                       'LIMIT', c.tied, size, 'WITHSCORES')
  else page = redis.call('ZRANGE', c.key, c.lo, c.hi, 'BYSCORE', 'LIMIT', c.tied, size,
                         'WITHSCORES') end
  local n = #page / 2
  c.page, c.n, c.pos, c.score = page, n, 1, nil
  if limit < 0 or n < size then c.ended = true; return end
  local last = page[2 * n]
  local same = 0
  for k = n, 1, -1 do
    if tonumber(page[2 * k]) == tonumber(last) then same = same + 1 else break end
  end
  if newest then
    if tonumber(last) == tonumber(c.hi) then c.tied = c.tied + same else c.tied = same end
    c.hi = last
  else
    if tonumber(last) == tonumber(c.lo) then c.tied = c.tied + same else c.tied = same end
    c.lo = last
  end
end

-- whether c has a next row (its position in c.page: c.pos), reading a page when needed
local function ready(c)
  if c.pos > c.n then
    if c.ended then return false end
    read_page(c)
    if c.pos > c.n then return false end
  end
  return true
end

-- whether c's next row comes before d's: by score, then member (bytewise), both reversed
-- (c.score: the score of c's next row as a number, once compared)
local function before(c, d)
  if c.score == nil then c.score = tonumber(c.page[2 * c.pos]) end
  if d.score == nil then d.score = tonumber(d.page[2 * d.pos]) end
  if c.score ~= d.score then
    if newest then return c.score > d.score end
    return c.score < d.score
  end
  local x, y = c.page[2 * c.pos - 1], d.page[2 * d.pos - 1]
  if newest then return blt(y, x) end
  return blt(x, y)
end

local one = #cursors == 1
while limit < 0 or found < limit do
  local c = nil
  if one then
    if ready(cursors[1]) then c = cursors[1] end
  else
    for _, d in ipairs(cursors) do
      if ready(d) and (c == nil or before(d, c)) then c = d end
    end
  end
  if c == nil then break end
  local id, step = c.page[2 * c.pos - 1], c.page[2 * c.pos]
  c.pos, c.score = c.pos + 1, nil
  local h = redis.call('HMGET', c.pre .. id .. c.suf, c.tf, c.rf)
  if h[1] then
    out[#out + 1] = c.tier
    out[#out + 1] = id
    out[#out + 1] = step
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    found = found + 1
  end
end
return out
