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
-- Arguments: see agentmem/writeplan.py. Checks everything first; writes only
-- when every record of the call can be written whole.
local A = ARGV
local unpack, tonumber, CH = unpack, tonumber, 1000
local nrec, ttl, idf, stampf = tonumber(A[1]), tonumber(A[2]), A[3], A[4]
local nscope = tonumber(A[5])
local spre, ssuf, spk = {}, {}, {}
local pos = 6
for i = 1, nscope do
  spre[i], ssuf[i], spk[i] = A[pos], A[pos + 1], A[pos + 2]
  pos = pos + 3
end
local mode, base, rid, pre, suf, pk, hs, he, keys = {}, {}, {}, {}, {}, {}, {}, {}, {}
for r = 1, nrec do
  mode[r], base[r], rid[r] = A[pos], A[pos + 1], A[pos + 2]
  local sc = tonumber(A[pos + 3])
  pre[r], suf[r], pk[r] = spre[sc], ssuf[sc], spk[sc]
  local nh = tonumber(A[pos + 4])
  hs[r] = pos + 5
  he[r] = pos + 4 + nh
  pos = pos + 5 + nh
  keys[r] = pre[r] .. rid[r] .. suf[r]
end

-- where the probe lists lie (the ids looked up after the type checks)
local nprobe = tonumber(A[pos]); pos = pos + 1
local pkeys, ps, pe = {}, {}, {}
for p = 1, nprobe do
  local n = tonumber(A[pos + 1])
  pkeys[p], ps[p], pe[p] = A[pos], pos + 2, pos + 1 + n
  pos = pos + 2 + n
end

-- every index key must be absent or of its type; counters must hold integers
local ngroup = tonumber(A[pos]); pos = pos + 1
local CMD = {Z = 'ZADD', z = 'ZADD', S = 'SADD', s = 'SADD', L = 'RPUSH', l = 'RPUSH',
  h = 'HINCRBY'}
local TYP = {Z = 'zset', z = 'zset', S = 'set', s = 'set', L = 'list', l = 'list', h = 'hash'}
local gcmd, gkey, gids, gcap, gs, ge = {}, {}, {}, {}, {}, {}
local checked, badlist = {}, {}
for g = 1, ngroup do
  -- a group: code key n <n args>; code = kind letter (upper case: the members
  -- are record ids) and, for a capped sorted set, the cap
  local code, key, n = A[pos], A[pos + 1], tonumber(A[pos + 2])
  local c = string.sub(code, 1, 1)
  local cmd, typ = CMD[c], TYP[c]
  gcmd[g], gkey[g], gids[g], gcap[g] = cmd, key, c == 'Z' or c == 'S' or c == 'L',
    tonumber(string.sub(code, 2)) or 0
  gs[g] = pos + 3
  ge[g] = pos + 2 + n
  pos = pos + 3 + n
  local state = checked[key]
  if state == nil then
    local t = redis.call('TYPE', key)['ok']
    state = t == 'none' or t == typ
    checked[key] = state
    if not state then badlist[#badlist + 1] = key end
  end
  if state and cmd == 'HINCRBY' then
    local fields = {}
    for i = gs[g], ge[g], 2 do fields[#fields + 1] = A[i] end
    for i = 1, #fields, CH do
      local vals = redis.call('HMGET', key, unpack(fields, i, math.min(i + CH - 1, #fields)))
      for _, v in ipairs(vals) do
        -- a canonical integer HINCRBY accepts and cannot overflow with our increments
        if v and not ((string.match(v, '^%-?[1-9]%d*$') or v == '0') and #v <= 15) then
          state = false
        end
      end
    end
    if not state then
      checked[key] = false
      badlist[#badlist + 1] = key
    end
  end
end
for p = 1, nprobe do
  local key = pkeys[p]
  if checked[key] == nil then
    local t = redis.call('TYPE', key)['ok']
    checked[key] = t == 'none' or t == 'zset'
    if not checked[key] then badlist[#badlist + 1] = key end
  end
end
local function tagged(tag, list)
  local out = {tag}
  for i = 1, #list do out[i + 1] = list[i] end
  return out
end
if #badlist > 0 then return tagged('\0WRONGTYPE', badlist) end

-- ids already in each probe index (the timeline: ids in use, even if expired)
local taken = {}
for p = 1, nprobe do
  local key, s, e = pkeys[p], ps[p], pe[p]
  local t = {}
  taken[key] = t
  for i = s, e, CH do
    local j2 = math.min(i + CH - 1, e)
    local sc = redis.call('ZMSCORE', key, unpack(A, i, j2))
    for j = i, j2 do if sc[j - i + 1] then t[A[j]] = true end end
  end
end

-- decide ids. The client gave every record a distinct id; where a generated id
-- is taken on the server, every generated record of that base is renumbered, in
-- order, to the free .n ids (ids given by the caller are never renamed: taken
-- means refused).
local anyexist = false
for i = 1, nrec, CH do
  if redis.call('EXISTS', unpack(keys, i, math.min(i + CH - 1, nrec))) > 0 then
    anyexist = true
  end
end
local reserved, dirty, conflicts = {}, nil, {}
for r = 1, nrec do
  local key, p = keys[r], pk[r]
  local busy = reserved[key] or (p ~= '' and taken[p][rid[r]]) or
    (anyexist and redis.call('EXISTS', key) == 1)
  if busy then
    if mode[r] == 'f' then
      conflicts[#conflicts + 1] = r
    else
      dirty = dirty or {}
      dirty[pre[r] .. base[r] .. suf[r]] = true
    end
  end
  reserved[key] = true
end
if #conflicts > 0 then return tagged('\0EXISTS', conflicts) end
local remap, changed = nil, {}
if dirty then
  remap = {}
  for r = 1, nrec do
    if mode[r] == 'g' and dirty[pre[r] .. base[r] .. suf[r]] then reserved[keys[r]] = nil end
  end
  local nextn = {}
  for r = 1, nrec do
    local scope = pre[r] .. base[r] .. suf[r]
    if mode[r] == 'g' and dirty[scope] then
      local p, n, id, key = pk[r], nextn[scope] or 0, nil, nil
      while true do
        if n == 0 then id = base[r] else id = base[r] .. '.' .. n end
        key = pre[r] .. id .. suf[r]
        n = n + 1
        if not reserved[key]
          and not (p ~= '' and (taken[p][id] or redis.call('ZSCORE', p, id)))
          and redis.call('EXISTS', key) == 0 then
          break
        end
      end
      nextn[scope] = n
      reserved[key] = true
      if id ~= rid[r] then
        remap[rid[r]] = id
        changed[#changed + 1] = r
        changed[#changed + 1] = id
        rid[r], keys[r] = id, key
      end
    end
  end
end

-- write: each hash with its TTL, then one variadic command per index key
local stamp = nil
if stampf ~= '' then stamp = redis.call('TIME')[1] end
for r = 1, nrec do
  if stamp then
    redis.call('HSET', keys[r], idf, rid[r], stampf, stamp, unpack(A, hs[r], he[r]))
  else
    redis.call('HSET', keys[r], idf, rid[r], unpack(A, hs[r], he[r]))
  end
  if ttl > 0 then redis.call('EXPIRE', keys[r], ttl) end
end
local caps = {}
for g = 1, ngroup do
  local cmd, key, s, e = gcmd[g], gkey[g], gs[g], ge[g]
  if cmd == 'HINCRBY' then
    for i = s, e, 2 do redis.call('HINCRBY', key, A[i], A[i + 1]) end
  elseif remap and gids[g] then
    local l = {}
    if cmd == 'ZADD' then
      for i = s, e, 2 do l[#l + 1] = A[i]; l[#l + 1] = remap[A[i + 1]] or A[i + 1] end
    else
      for i = s, e do l[#l + 1] = remap[A[i]] or A[i] end
    end
    redis.call(cmd, key, unpack(l))
  else
    redis.call(cmd, key, unpack(A, s, e))
  end
  if gcap[g] > 0 then caps[key] = gcap[g] end
end
for key, cap in pairs(caps) do redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1) end
return tagged(stamp or '', changed)
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
-- ARGV: source key, 'set'|'list', start, stop, prefix, middle, suffix, limit (-1: all),
-- step ('' when unknown). An id reads {agent_id}-{step}-{rest} where rest has no '-'
-- (agentmem refuses '-' in action types), so the agent is what precedes the last two
-- '-'. Ids written by other code may have '-' in the type: every other split before
-- '-<step>-' is then tried, nearest the end first.
local src, kind = ARGV[1], ARGV[2]
local start, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix, middle, suffix = ARGV[5], ARGV[6], ARGV[7]
local limit, step = tonumber(ARGV[8]), ARGV[9]
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
  local dashes = {}
  local init = 1
  while true do
    local d = string.find(id, '-', init, true)
    if not d then break end
    dashes[#dashes + 1] = d
    init = d + 1
  end
  for k = #dashes - 1, 1, -1 do
    local s = string.sub(id, dashes[k] + 1, dashes[k + 1] - 1)
    if string.match(s, '^%d+$') and (step == '' or s == step) and dashes[k] > 1 then
      local h = redis.call('HGETALL', prefix .. string.sub(id, 1, dashes[k] - 1) .. middle
                           .. id .. suffix)
      if #h > 0 then out[#out + 1] = h; break end
    end
  end
end
return out
""")

ALL = (WRITE, GET_MANY, ZRANGE_FETCH, SET_SORTED_FETCH, RELATIVE_FETCH, SIM_FETCH)
