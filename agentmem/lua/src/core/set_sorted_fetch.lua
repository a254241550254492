#!lua flags=no-writes
-- set_sorted_fetch: a set index ordered by a sorted index, with the hashes.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: skey, zkey, prefix, suffix, rev, limit (-1: all), min ('' none), min_exclusive, skind ('z': skey is a sorted set, its members taken as a set's; 's', '' or absent: a set)
-- Reply: the HGETALL of each member whose hash exists, in order, at most limit
--!include lib/fetch.lua
--!include lib/sort_rows.lua

-- ARGV: skey, zkey, prefix, suffix, rev ('1'|'0'), limit (-1: all), min ('' none), min_exclusive
--
-- Two ways to the same answer, the cheaper chosen:
-- * walk: the sorted index from its top (ZRANGE ... REV, in chunks), keeping the
--   members the set holds (SMISMEMBER), until limit hashes are found. Its work is
--   about limit x (sorted index size / set size): a few members for a common type.
-- * sort: every member of the set, scored (ZMSCORE) and sorted. Its work is the
--   set's size; members without a score come last (or are dropped by min).
-- The walk is tried when there is a limit, newest first, the set is not small and
-- the walk's expected length (limit x sorted index size / set size, members spread
-- evenly) is below the set's size; once it has visited as many members of the sorted
-- index as the set holds, sorting the set costs less and it switches (the set's
-- members are the oldest).
-- The sort is one ZINTER of the set with the sorted index (the server's C code, about
-- the set's size); only when the sorted index lacks some members (an index left
-- inconsistent) does it score and sort every member here (members without a score
-- come last).
local skey, zkey, prefix, suffix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rev, limit = ARGV[5] == '1', tonumber(ARGV[6])
local min = ARGV[7] ~= '' and tonumber(ARGV[7]) or nil
local excl = ARGV[8] == '1'
local zs = ARGV[9] == 'z'  -- layout 4's targets: a sorted set used as a set here
local function card(k) return redis.call(zs and 'ZCARD' or 'SCARD', k) end
local function members(k)
  if zs then return redis.call('ZRANGE', k, 0, -1) end
  return redis.call('SMEMBERS', k)
end
local CH = 1000
local SMALL = 128

local function walk(size)
  -- pages of the sorted index, highest first; the next page starts at the last
  -- score seen, past the members of that score already seen (no rank offsets; scores
  -- compare as numbers: '0' and '-0' are one score)
  local out, visited, hi, tied = {}, 0, '+inf', 0
  local chunk = math.max(4 * limit, 64)
  local lo = '-inf'
  if min then lo = (excl and '(' or '') .. ARGV[7] end
  while visited < size do
    local page = redis.call('ZRANGE', zkey, hi, lo, 'BYSCORE', 'REV', 'LIMIT', tied, chunk,
                            'WITHSCORES')
    local n = #page / 2
    if n == 0 then return out end
    local ids = {}
    for k = 1, n do ids[k] = page[2 * k - 1] end
    local there = redis.call(zs and 'ZMSCORE' or 'SMISMEMBER', skey, unpack(ids))
    for k = 1, n do
      if there[k] == 1 or (zs and there[k]) then
        fetch_into(out, prefix .. ids[k] .. suffix)
        if #out >= limit then return out end
      end
    end
    if n < chunk then return out end
    visited = visited + n
    local last = page[2 * n]
    if tonumber(last) == tonumber(hi) then tied = tied + n else
      tied = 0
      for k = n, 1, -1 do
        if tonumber(page[2 * k]) == tonumber(last) then tied = tied + 1 else break end
      end
      hi = last
    end
    chunk = math.min(chunk * 2, CH)
  end
  return nil  -- visited as many as the set holds: sorting the set is cheaper
end

local function num(v)
  if v == 'inf' or v == '+inf' then return math.huge elseif v == '-inf' then return -math.huge end
  return tonumber(v)
end

-- the set's members ordered by the sorted index, in the server (ZINTER); nil when the
-- sorted index lacks some of them (the Lua sort below places those)
local function sort_zinter(size)
  local r = redis.call('ZINTER', 2, skey, zkey, 'WEIGHTS', 0, 1, 'WITHSCORES')
  local n = #r / 2
  if n ~= size then return nil end
  local out = {}
  local first, last, step = 1, n, 1
  if rev then first, last, step = n, 1, -1 end
  for k = first, last, step do
    if limit >= 0 and #out >= limit then break end
    local keep = true
    if min then
      local s = num(r[2 * k])
      keep = s > min or (not excl and s == min)
    end
    if keep then fetch_into(out, prefix .. r[2 * k - 1] .. suffix)
    elseif rev then break end  -- highest first: every later score is below min too
  end
  return out
end

local function sort_all()
  if zkey ~= '' then
    local out = sort_zinter(card(skey))
    if out then return out end
  end
  local ids = members(skey)
  local rows = {}
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
end

if limit == 0 then return {} end
if limit > 0 and rev and zkey ~= '' then
  local size = card(skey)
  local expected = limit * redis.call('ZCARD', zkey) / math.max(size, 1)
  if size > SMALL and limit < size and expected < size then
    local out = walk(size)
    -- a walk that found fewer than limit may have missed members the sorted index
    -- lacks (no score): only the sort lists those, so it answers then
    if out and (#out >= limit or min) then return out end
  end
end
return sort_all()
