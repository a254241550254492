#!lua flags=no-writes
-- page: one page of an index's records after a cursor, with the cursor of the next page.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, key, order key, lo, hi, rev, size, cursor score, cursor member, prefix, suffix, middle, simulation id, step, simulation id field (absent: 'simulation_id')
-- Reply: {hashes, more, next score, next member}: the HGETALL of up to size records whose hash exists, in order; more '1' when entries follow (the cursor: score and member of the last record returned), '0' at the end
-- Modes: 'z' a sorted set of ids by score within [lo, hi] (the cursor: the score and id of
-- the last record returned; ties by id); 's' the ids of set key walked in the order of the
-- sorted set order key (ids it lacks are not listed); 'S' as 's', key a sorted set whose
-- members are taken as a set's (layout 4's targets; its scores are not used); 'i' a set of ids by id (byte order;
-- cursor: the last id); 'l' a list of ids by position (cursor: the next position).
-- rev '1': highest score first. middle '': a record key is prefix .. id .. suffix; else
-- prefix .. agent .. middle .. id .. suffix, the agent read from the id as SIM_FETCH does,
-- and a hash of another simulation than the simulation id skipped (its hash field that
-- holds the simulation id: the simulation id field, the layout's name for it).
--!include lib/sim_agents.lua
--!include lib/bytewise.lua
local mode, key, okey, lo, hi = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rev, size, cscore, cmember = ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8], ARGV[9]
local prefix, suffix, middle, sim, step = ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local sf = ARGV[15]
local CH = 128

local function fetch(id)
  if middle == '' then
    local h = redis.call('HGETALL', prefix .. id .. suffix)
    if #h > 0 then return h end
    return nil
  end
  for _, agent in ipairs(sim_agents(id, step)) do
    local h = redis.call('HGETALL', prefix .. agent .. middle .. id .. suffix)
    if #h > 0 and of_sim(h, sim, sf) then return h end
  end
  return nil
end

-- the entries after the cursor, in order: next() gives id, score (nil at the end); scores
-- compare as numbers ('0' and '-0' are one score, written either way by the server)
local function sorted_walk(zkey)
  local buf, at, tied, done = {}, 1, 0, false
  local from = lo
  if rev then from = hi end
  if cscore ~= '' then from = cscore end
  local function more()
    local page
    if rev then page = redis.call('ZRANGE', zkey, from, lo, 'BYSCORE', 'REV', 'LIMIT', tied, CH,
                                  'WITHSCORES')
    else page = redis.call('ZRANGE', zkey, from, hi, 'BYSCORE', 'LIMIT', tied, CH,
                           'WITHSCORES') end
    local n = #page / 2
    buf, at = {}, 1
    for k = 1, n do buf[k] = {page[2 * k - 1], page[2 * k]} end
    if n < CH then done = true; return end
    local last, same = page[2 * n], 0
    for k = n, 1, -1 do
      if tonumber(page[2 * k]) == tonumber(last) then same = same + 1 else break end
    end
    if tonumber(last) == tonumber(from) then tied = tied + same else tied = same end
    from = last
  end
  more()
  return function()
    while true do
      if at > #buf then
        if done then return nil end
        more()
        if at > #buf then return nil end
      end
      local e = buf[at]
      at = at + 1
      -- past the cursor: entries of its score up to its id (in this direction) were read
      local skip = false
      if cscore ~= '' and tonumber(e[2]) == tonumber(cscore) then
        if rev then skip = not blt(e[1], cmember) else skip = not blt(cmember, e[1]) end
      end
      if not skip then return e[1], e[2] end
    end
  end
end

local out, nextf, last = {}, nil, nil
if mode == 'z' then
  nextf = sorted_walk(key)
elseif mode == 's' or mode == 'S' then
  local zs = mode == 'S'
  local n = redis.call(zs and 'ZCARD' or 'SCARD', key)
  local function num(b)
    local v = string.gsub(b, '^%(', '')
    if v == '-inf' then return -math.huge elseif v == '+inf' or v == 'inf' then return math.huge end
    return tonumber(v)
  end
  -- the set's ids with their scores, sorted, after the cursor (cs, cm): one ZINTER in
  -- the server (work about the set's size); ids the sorted set lacks are not listed
  local function sorted_set(cs, cm)
    local r = redis.call('ZINTER', 2, key, okey, 'WEIGHTS', 0, 1, 'WITHSCORES')
    local lon, hin = num(lo), num(hi)
    local lox, hix = string.sub(lo, 1, 1) == '(', string.sub(hi, 1, 1) == '('
    local csn = tonumber(cs)
    local m = #r / 2
    local k, last, step = 1, m, 1
    if rev then k, last, step = m, 1, -1 end
    return function()
      while (step == 1 and k <= last) or (step == -1 and k >= last) do
        local id, raw = r[2 * k - 1], r[2 * k]
        k = k + step
        local sc = num(raw)
        local inside = (sc > lon or (sc == lon and not lox)) and (sc < hin or (sc == hin and not hix))
        local after = true
        if csn then
          if rev then after = sc < csn or (sc == csn and blt(id, cm))
          else after = sc > csn or (sc == csn and blt(cm, id)) end
        end
        if inside and after then return id, raw end
      end
      return nil
    end
  end
  local zn = redis.call('ZCARD', okey)
  if n <= 2 * CH or size * zn / math.max(n, 1) >= n then
    -- a small set, or members too sparse in the sorted set for a walk to pay: sorted
    nextf = sorted_set(cscore, cmember)
  else
    -- a large set: the sorted set walked from the cursor, its members kept (work about
    -- size x sorted set / set, not the set's size); once the walk has visited as many
    -- entries as the set holds (its members are further on), the set is sorted instead,
    -- from the last entry the walk gave
    local walk = sorted_walk(okey)
    local buf, at, ended, visited = {}, 1, false, 0
    local gave_s, gave_id = cscore, cmember
    local sorted = nil
    nextf = function()
      while true do
        if sorted then return sorted() end
        if at <= #buf then
          at = at + 1
          gave_s, gave_id = buf[at - 1][2], buf[at - 1][1]
          return buf[at - 1][1], buf[at - 1][2]
        end
        if ended then return nil end
        if visited >= n then
          sorted = sorted_set(gave_s, gave_id)
        else
          local batch = {}
          for _ = 1, CH do
            local id, sc = walk()
            if not id then ended = true; break end
            batch[#batch + 1] = {id, sc}
          end
          visited = visited + #batch
          buf, at = {}, 1
          if #batch > 0 then
            local ids = {}
            for k, e in ipairs(batch) do ids[k] = e[1] end
            local isin = redis.call(zs and 'ZMSCORE' or 'SMISMEMBER', key, unpack(ids))
            for k, e in ipairs(batch) do
              if isin[k] == 1 or (zs and isin[k]) then buf[#buf + 1] = e end
            end
          end
        end
      end
    end
  end
elseif mode == 'i' then
  local ids = redis.call('SMEMBERS', key)
  sort_ids(ids)
  local i = 1
  nextf = function()
    while i <= #ids do
      local id = ids[i]
      i = i + 1
      if cmember == '' or blt(cmember, id) then return id, 'i' end
    end
    return nil
  end
else
  local at = tonumber(cscore) or 0
  local buf, k = {}, 1
  nextf = function()
    if k > #buf then
      buf, k = redis.call('LRANGE', key, at, at + CH - 1), 1
      if #buf == 0 then return nil end
    end
    k = k + 1
    at = at + 1
    return buf[k - 1], tostring(at)
  end
end

while #out < size do
  local id, s = nextf()
  if not id then return {out, '0', '', ''} end
  local h = fetch(id)
  if h then
    out[#out + 1] = h
    if mode == 'l' then last = {s, ''} else last = {s, id} end
  end
end
if not nextf() then return {out, '0', '', ''} end
return {out, '1', last[1], last[2]}
