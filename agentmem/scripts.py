"""Server-side scripts: every write and every multi-step query is one round trip.

Scripts are plain values (name, source, SHA1); the backends load and run them.
The write script is generic over declarations: it receives the key templates,
the index declarations and the records' field values, decides ids, checks every
key's type before writing anything, then writes with one variadic command per
key. A record is refused (nothing of it written) rather than half-written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


WRITE = Script("write", r"""#!lua
-- Generic write: see agentmem/writeplan.py for the argument layout.
local A = ARGV
local pos = 1
local function nxt() local v = A[pos]; pos = pos + 1; return v end
local concat = table.concat

-- A template renders keys from a record's values; keys of templates with one
-- or two fields are cached per value so each distinct key is built once per call.
local function template()
  local n = tonumber(nxt()); local kinds, texts, fields = {}, {}, {}
  for i = 1, n do
    local p = nxt(); kinds[i] = string.sub(p, 1, 1); texts[i] = string.sub(p, 2)
    if kinds[i] == 'F' then fields[#fields + 1] = texts[i] end
  end
  local function build(vals)
    local out = {}
    for i = 1, n do
      if kinds[i] == 'L' then out[i] = texts[i] else
        local v = vals[texts[i]]
        if v == nil then return nil end
        out[i] = v
      end
    end
    return concat(out)
  end
  local nf = #fields
  if nf == 0 then
    local k = build({})
    return function() return k end, fields
  elseif nf == 1 then
    local f, cache = fields[1], {}
    return function(vals)
      local v = vals[f]
      if v == nil then return nil end
      local k = cache[v]
      if k == nil then k = build(vals); cache[v] = k end
      return k
    end, fields
  elseif nf == 2 then
    local f1, f2, cache = fields[1], fields[2], {}
    return function(vals)
      local v1, v2 = vals[f1], vals[f2]
      if v1 == nil or v2 == nil then return nil end
      local c = cache[v1]
      if c == nil then c = {}; cache[v1] = c end
      local k = c[v2]
      if k == nil then k = build(vals); c[v2] = k end
      return k
    end, fields
  end
  return build, fields
end

local nrec = tonumber(nxt())
local ttl = tonumber(nxt())
local idf = nxt()
local stampf = nxt()
local nk = tonumber(nxt())
local knames = {}
for i = 1, nk do knames[i] = nxt() end
local reckey = template()
local probe = tonumber(nxt())
local nidx = tonumber(nxt())
local ikind, ikey, ia, imember, icap = {}, {}, {}, {}, {}
for i = 1, nidx do
  ikind[i] = nxt(); ikey[i] = template(); ia[i] = nxt(); imember[i] = nxt()
  icap[i] = tonumber(nxt())
end
local stamp = nil
if stampf ~= '' then stamp = redis.call('TIME')[1] end

-- Pass 1: read every record (the values its keys need, and where its hash
-- fields lie in ARGV); look up all candidate ids with one ZMSCORE per probe
-- key and one EXISTS over all candidate record keys.
local recs = {}
local byprobe, probeorder = {}, {}
local allkeys = {}
for r = 1, nrec do
  local mode, base = A[pos], A[pos + 1]
  pos = pos + 2
  local vals = {}
  for i = 1, nk do
    local v = A[pos]; pos = pos + 1
    if v ~= '' then vals[knames[i]] = v end
  end
  local nh = tonumber(A[pos])
  local hstart = pos + 1
  pos = hstart + nh
  vals[idf] = base
  local key = reckey(vals)
  local pkey = nil
  if probe > 0 then
    pkey = ikey[probe](vals)
    local l = byprobe[pkey]
    if l == nil then l = {}; byprobe[pkey] = l; probeorder[#probeorder + 1] = pkey end
    l[#l + 1] = base
  end
  allkeys[r] = key
  recs[r] = {mode, base, vals, hstart, pos - 1, pkey}
end
local CH = 1000
local inprobe = {}
for _, pkey in ipairs(probeorder) do
  local ids = byprobe[pkey]
  local seen = {}
  inprobe[pkey] = seen
  for i = 1, #ids, CH do
    local j = math.min(i + CH - 1, #ids)
    local sc = redis.call('ZMSCORE', pkey, unpack(ids, i, j))
    for k = i, j do if sc[k - i + 1] then seen[ids[k]] = true end end
  end
end
local anyexist = false
for i = 1, #allkeys, CH do
  if redis.call('EXISTS', unpack(allkeys, i, math.min(i + CH - 1, #allkeys))) > 0 then
    anyexist = true
  end
end

-- Pass 2: decide each id, check every key it touches, write its hash.
local EXPECT = {z = 'zset', s = 'set', l = 'list', h = 'hash'}
local known = {}
local function type_ok(key, want)
  local k = known[key]
  if k then return k == want end
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then return false end
  known[key] = want
  return true
end
local counted = {}
local function counter_ok(key, f)
  local c = counted[key]
  if c == nil then c = {}; counted[key] = c end
  if c[f] then return true end
  local v = redis.call('HGET', key, f)
  if v and not string.match(v, '^%-?%d+$') then return false end
  c[f] = true
  return true
end
local taken = {}
local nextn = {}
local out = {stamp or ''}
local zs, ss, ls, hc, caps, zdedupe = {}, {}, {}, {}, {}, {}
local opk, opa, opm = {}, {}, {}
for r = 1, nrec do
  local rec = recs[r]
  local mode, base, vals, hstart, hend, pkey = rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]
  local err = nil
  local n = nextn[base] or 0
  local id = base
  if n > 0 then id = base .. '.' .. n; vals[idf] = id end
  local key = reckey(vals)
  while true do
    local busy = taken[key]
    if not busy and pkey then
      if n == 0 then busy = inprobe[pkey][id]
      else busy = redis.call('ZSCORE', pkey, id) end
    end
    if not busy and (anyexist or n > 0) then busy = redis.call('EXISTS', key) == 1 end
    if not busy then break end
    if mode == 'f' then err = 'EXISTS ' .. key; break end
    n = n + 1
    id = base .. '.' .. n
    vals[idf] = id
    key = reckey(vals)
  end
  local nops = 0
  if not err then
    for i = 1, nidx do
      local kind = ikind[i]
      local k = ikey[i](vals)
      if k ~= nil then
        local a, m = nil, id
        local use = true
        if kind == 'z' or kind == 'h' then a = vals[ia[i]]; use = a ~= nil end
        if use and imember[i] ~= '' then m = vals[imember[i]]; use = m ~= nil end
        if use then
          if not type_ok(k, EXPECT[kind]) then err = 'WRONGTYPE ' .. k; break end
          if kind == 'h' and not counter_ok(k, a) then err = 'NOTCOUNTER ' .. k; break end
          nops = nops + 1; opk[nops] = k; opa[nops] = a; opm[nops] = i
          if kind ~= 'h' then opm[nops] = m; opa[nops] = {i, a} end
        end
      end
    end
  end
  if err then
    out[r + 1] = '\0' .. err
  else
    if mode == 'g' then nextn[base] = n + 1 end
    taken[key] = true
    if stamp then redis.call('HSET', key, idf, id, stampf, stamp, unpack(A, hstart, hend))
    else redis.call('HSET', key, idf, id, unpack(A, hstart, hend)) end
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    for j = 1, nops do
      local k = opk[j]
      local a = opa[j]
      if type(a) == 'table' then
        local i = a[1]
        local kind = ikind[i]
        local l
        if kind == 'z' then
          l = zs[k]; if l == nil then l = {}; zs[k] = l end
          if imember[i] ~= '' then
            local d = zdedupe[k]; if d == nil then d = {}; zdedupe[k] = d end
            local m = opm[j]
            if d[m] then l = nil else d[m] = true end
          end
          if l then l[#l + 1] = a[2] end
          if icap[i] > 0 then caps[k] = icap[i] end
        elseif kind == 's' then
          l = ss[k]; if l == nil then l = {}; ss[k] = l end
        else
          l = ls[k]; if l == nil then l = {}; ls[k] = l end
        end
        if l then l[#l + 1] = opm[j] end
      else
        local h = hc[k]; if h == nil then h = {}; hc[k] = h end
        h[a] = (h[a] or 0) + 1
      end
    end
    out[r + 1] = id
  end
end

-- Pass 3: one variadic command per index key.
local function variadic(cmd, k, l)
  for i = 1, #l, CH do redis.call(cmd, k, unpack(l, i, math.min(i + CH - 1, #l))) end
end
for k, l in pairs(zs) do
  variadic('ZADD', k, l)
  if caps[k] then redis.call('ZREMRANGEBYRANK', k, 0, -caps[k] - 1) end
end
for k, l in pairs(ss) do variadic('SADD', k, l) end
for k, l in pairs(ls) do variadic('RPUSH', k, l) end
for k, h in pairs(hc) do
  for f, c in pairs(h) do redis.call('HINCRBY', k, f, c) end
end
return out
""")


_FETCH = r"""
local function fetch_into(out, key)
  local h = redis.call('HGETALL', key)
  if #h > 0 then out[#out + 1] = h; return true end
  return false
end
"""

GET_MANY = Script("get_many", r"""#!lua flags=no-writes
local prefix, suffix = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do out[#out + 1] = redis.call('HGETALL', prefix .. ARGV[i] .. suffix) end
return out
""")

ZRANGE_FETCH = Script("zrange_fetch", r"""#!lua flags=no-writes
""" + _FETCH + r"""
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
""")

SET_SORTED_FETCH = Script("set_sorted_fetch", r"""#!lua flags=no-writes
""" + _FETCH + r"""
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
if rev then
  table.sort(rows, function(x, y)
    if x[1] ~= y[1] then return x[1] > y[1] end
    return x[2] > y[2]
  end)
else
  table.sort(rows, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end)
end
local out = {}
for _, row in ipairs(rows) do
  if limit >= 0 and #out >= limit then break end
  fetch_into(out, prefix .. row[2] .. suffix)
end
return out
""")

RELATIVE_FETCH = Script("relative_fetch", r"""#!lua flags=no-writes
-- ARGV: relative index key, timeline key, prefix, suffix, k (0 = newest)
local rel, tl, prefix, suffix, k = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local rank = -k - 1
local ids = {}
if k < redis.call('ZCARD', rel) then ids = redis.call('ZRANGE', rel, rank, rank)
else ids = redis.call('ZRANGE', tl, rank, rank) end
if #ids == 0 then return {} end
local h = redis.call('HGETALL', prefix .. ids[1] .. suffix)
if #h == 0 then return {} end
return {h}
""")

SIM_FETCH = Script("sim_fetch", r"""#!lua flags=no-writes
-- Resolve action ids of a simulation-level index to their agent's hash and fetch them.
-- ARGV: source key, 'set'|'list', start, stop, prefix, middle, suffix, limit (-1: all)
-- An action id is {agent_id}-{step}-{type}[.n]; the agent id may itself contain '-',
-- so every split before a '-<digits>-' is tried until the hash exists.
local src, kind = ARGV[1], ARGV[2]
local start, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix, middle, suffix = ARGV[5], ARGV[6], ARGV[7]
local limit = tonumber(ARGV[8])
local ids
if kind == 'set' then
  ids = redis.call('SMEMBERS', src)
  table.sort(ids)
else
  ids = redis.call('LRANGE', src, start, stop)
end
local out = {}
for _, id in ipairs(ids) do
  if limit >= 0 and #out >= limit then break end
  local init = 1
  while true do
    local s, e = string.find(id, '%-%d+%-', init)
    if not s then break end
    local agent = string.sub(id, 1, s - 1)
    if #agent > 0 then
      local h = redis.call('HGETALL', prefix .. agent .. middle .. id .. suffix)
      if #h > 0 then out[#out + 1] = h; break end
    end
    init = s + 1
  end
end
return out
""")

ALL = (WRITE, GET_MANY, ZRANGE_FETCH, SET_SORTED_FETCH, RELATIVE_FETCH, SIM_FETCH)
