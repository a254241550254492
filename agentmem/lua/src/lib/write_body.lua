-- lib/write_body.lua: a part included by scripts (see agentmem/lua/loader.py).
-- The write scripts after their arguments are read: core/write.lua reads them as the
-- client built them, core/write_cols.lua builds them from columns. It reads the locals
-- its includer defines: A (the arguments, in the layout of agentmem/plans/writeargs.py
-- but for where the scopes are), nrec, ttl, idf, stampf, nscope, SB (scope s's six
-- values are A[SB + 6s] .. A[SB + 6s + 5]), pos (the position of the first record) and
-- G0, G0n (the groups' own table and their number; nil: in A after the probes);
-- it ends the script with core/write.lua's reply.
local rpos, rsc, rid, keys, rnh = {}, {}, {}, {}, {}
for r = 1, nrec do
  -- a record: mode base id scope retired_scope retired_order nh <nh hash args>
  local s = SB + 6 * tonumber(A[pos + 3])
  local id, nh = A[pos + 2], tonumber(A[pos + 6])
  rpos[r], rsc[r], rid[r], rnh[r] = pos, s, id, nh
  keys[r] = A[s] .. id .. A[s + 1]
  pos = pos + 7 + nh
end
local nprobe = tonumber(A[pos]); pos = pos + 1
local ppos = pos
for p = 1, nprobe do pos = pos + 2 + tonumber(A[pos + 1]) end
-- the groups: in A after the probes, or in a table of their own when the includer built
-- them apart (G0: the table, G0n: how many)
local G, ngroup, gpos = G0, G0n, 1
if not G then
  G, ngroup = A, tonumber(A[pos])
  pos = pos + 1
  gpos = pos
end

-- are any of the records' keys taken? (when none is, each is a key known absent)
local anyexist = false
for i = 1, nrec, CH do
  if call('EXISTS', unpack(keys, i, math.min(i + CH - 1, nrec))) > 0 then anyexist = true end
end

-- every key must be absent or of its type; counters must hold integers.
-- The probe indices (sorted sets) are checked by the lookup of their ids.
-- A length command (ZCARD, LLEN, SCARD: an integer, or a type error) is the cheaper
-- check; a hash is checked by TYPE.
local checked, badlist, taken = {}, {}, {}
local LEN = {zset = 'ZCARD', list = 'LLEN', set = 'SCARD'}
local function typed(key, typ)
  local ok
  local len = LEN[typ]
  if len then
    ok = type(redis.pcall(len, key)) == 'number'
  else
    local t = call('TYPE', key)['ok']
    ok = t == 'none' or t == typ
  end
  checked[key] = ok
  if not ok then badlist[#badlist + 1] = key end
  return ok
end
pos = ppos
for p = 1, nprobe do
  local key, n = A[pos], tonumber(A[pos + 1])
  local s, e = pos + 2, pos + 1 + n
  pos = e + 1
  if checked[key] == nil then
    local t = {}
    taken[key] = t
    for i = s, e, CH do
      local j2 = math.min(i + CH - 1, e)
      local sc = redis.pcall('ZMSCORE', key, unpack(A, i, j2))
      if sc.err then
        if typed(key, 'zset') then return sc end  -- not a type error: raised as it is
        break
      end
      checked[key] = true
      for j = i, j2 do if sc[j - i + 1] then t[A[j]] = true end end
    end
  end
end
local sets, others = {}, {}
local gc, gs, ge = {}, {}, {}  -- each group's kind letter and the range of its args
pos = gpos
for g = 1, ngroup do
  -- a group: code key n <n args>; code = kind letter (upper case: the members
  -- are record ids) and, for a capped sorted set, the cap
  local c, key, n = byte(G[pos]), G[pos + 1], tonumber(G[pos + 2])
  gc[g], gs[g], ge[g] = c, pos + 3, pos + 2 + n
  if c == 104 then
    -- counters: the fields of every group of the key (a key may take several)
    if checked[key] ~= false then
      local fields = {}
      for i = pos + 3, pos + 2 + n, 2 do fields[#fields + 1] = G[i] end
      local ok = true
      for i = 1, #fields, CH do
        local vals = redis.pcall('HMGET', key, unpack(fields, i, math.min(i + CH - 1, #fields)))
        if vals.err then
          if typed(key, 'hash') then return vals end
          ok = nil
          break
        end
        for _, v in ipairs(vals) do
          -- a canonical integer HINCRBY accepts and cannot overflow with our increments
          if v and not ((string.match(v, '^%-?[1-9]%d*$') or v == '0') and #v <= 15) then
            ok = false
          end
        end
      end
      if ok ~= nil then
        checked[key] = ok
        if not ok then badlist[#badlist + 1] = key end
      end
    end
  elseif checked[key] == nil then
    if c == 83 or c == 115 then  -- S, s: sets, checked together below
      checked[key] = true
      sets[#sets + 1] = key
    elseif c == 79 then  -- O: the outbox (a list of record keys) and its registry set
      -- with the dual writer's marker (n = 5: marker key, token): refused whole, nothing
      -- written, unless the marker holds the token (the retired marks are as seeded)
      if n >= 5 and call('GET', G[pos + 6]) ~= G[pos + 7] then return {'\0UNSEEDED'} end
      checked[key] = true
      others[#others + 1] = key
      others[#others + 1] = 'list'
      others[#others + 1] = G[pos + 3]
      others[#others + 1] = 'set'
    else
      checked[key] = true
      others[#others + 1] = key
      others[#others + 1] = (c == 76 or c == 108) and 'list' or 'zset'
    end
  end
  pos = pos + 3 + n
end
-- sets: SINTERCARD refuses a key of another type; with a key known to be absent
-- it stops there, without intersecting anything
local nsets = #sets
if nsets > 0 then
  local ok = false
  if not anyexist then
    ok = true
    for i = 1, nsets, CH do
      local j2 = math.min(i + CH - 1, nsets)
      local res = redis.pcall('SINTERCARD', j2 - i + 2, keys[1], unpack(sets, i, j2))
      if type(res) == 'table' then ok = false; break end
    end
  end
  if not ok then
    for i = 1, nsets do typed(sets[i], 'set') end
  end
end
-- the retired marks (a generated id at or below its scope's mark is renumbered, below):
-- the scope's field and ':any' (a mark of every scope, raised where the scope of an id
-- that left is not known: integrity.repair); their HMGET checks the retired key's type too
local marks, retire = {}, {}
for r = 1, nrec do
  local rp, s = rpos[r], rsc[r]
  local rk = A[s + 3]
  local f = A[rp + 4]
  if A[rp] == 'g' and rk ~= '' and f ~= '' and checked[rk] ~= false then
    local mk = marks[rk]
    if mk == nil then
      mk = {}
      marks[rk] = mk
    end
    local mark = mk[f]
    if mark == nil then
      local v = redis.pcall('HMGET', rk, f, ':any')
      if v.err then
        if typed(rk, 'hash') then return v end  -- not a type error: raised as it is
        mark = false
      else
        checked[rk] = true
        local m, any = tonumber(v[1]), tonumber(v[2])
        if m and any then mark = math.max(m, any) else mark = m or any or false end
      end
      mk[f] = mark
    end
    if mark and tonumber(A[rp + 5]) <= mark then retire[r] = rk end
  end
end
for sc = 1, nscope do
  local rk = A[SB + 6 * sc + 3]
  if rk ~= '' and checked[rk] == nil then
    checked[rk] = true
    others[#others + 1] = rk
    others[#others + 1] = 'hash'
  end
end
for i = 1, #others, 2 do typed(others[i], others[i + 1]) end
if #badlist > 0 then
  table.insert(badlist, 1, '\0WRONGTYPE')
  return badlist
end

-- decide ids. The client gave every record a distinct id; where a generated id
-- is taken on the server, every generated record of that base is renumbered, in
-- order, to the free .n ids (ids given by the caller are never renamed: taken
-- means refused).
local reserved, dirty, conflicts = {}, nil, {}
-- a generated id whose record is at or below its scope's retired mark (an id of that
-- order may have left memory, and been archived) is never the template id: it gets
-- base .. '.r' .. n from the retired key's counter, unique for the life of the data
local remap, changed = nil, {''}
for r = 1, nrec do
  if retire[r] then reserved[keys[r]] = true end  -- its template id stays unused
end
for r = 1, nrec do
  if retire[r] then
    local rp, s = rpos[r], rsc[r]
    local id, key
    repeat
      id = A[rp + 1] .. '.r' .. call('HINCRBY', retire[r], ':seq', 1)
      key = A[s] .. id .. A[s + 1]
    until not reserved[key] and call('EXISTS', key) == 0
    reserved[key] = true
    remap = remap or {}
    remap[rid[r]] = id
    changed[#changed + 1] = r
    changed[#changed + 1] = id
    rid[r], keys[r] = id, key
  end
end
-- whether record r's id under id left memory and lives on (its IM hash, moved_to):
-- taken too, whichever simulation's action it was. One EXISTS of all the records'
-- such keys first: when none exists (the common case), no record is checked alone.
local function moved(r, id)
  local mp = A[rsc[r] + 4]
  return mp ~= '' and call('EXISTS', mp .. id .. A[rsc[r] + 5]) == 1
end
local mkeys = {}
for r = 1, nrec do
  local mp = A[rsc[r] + 4]
  if not retire[r] and mp ~= '' then mkeys[#mkeys + 1] = mp .. rid[r] .. A[rsc[r] + 5] end
end
local anymoved = false
for i = 1, #mkeys, CH do
  if call('EXISTS', unpack(mkeys, i, math.min(i + CH - 1, #mkeys))) > 0 then anymoved = true end
end
for r = 1, nrec do
  if not retire[r] then
    local key, p = keys[r], A[rsc[r] + 2]
    local busy = reserved[key] or (p ~= '' and taken[p][rid[r]]) or
      (anyexist and call('EXISTS', key) == 1) or (anymoved and moved(r, rid[r]))
    if busy then
      local rp = rpos[r]
      if A[rp] == 'f' then
        conflicts[#conflicts + 1] = r
      else
        dirty = dirty or {}
        dirty[A[rsc[r]] .. A[rp + 1] .. A[rsc[r] + 1]] = true
      end
    end
    reserved[key] = true
  end
end
if #conflicts > 0 then
  table.insert(conflicts, 1, '\0EXISTS')
  return conflicts
end
if dirty then
  remap = remap or {}
  for r = 1, nrec do
    local rp, s = rpos[r], rsc[r]
    if not retire[r] and A[rp] == 'g' and dirty[A[s] .. A[rp + 1] .. A[s + 1]] then
      reserved[keys[r]] = nil
    end
  end
  local nextn = {}
  for r = 1, nrec do
    local rp, s = rpos[r], rsc[r]
    local pre, base, suf = A[s], A[rp + 1], A[s + 1]
    local scope = pre .. base .. suf
    if not retire[r] and A[rp] == 'g' and dirty[scope] then
      local p, n, id, key = A[s + 2], nextn[scope] or 0, nil, nil
      while true do
        if n == 0 then id = base else id = base .. '.' .. n end
        key = pre .. id .. suf
        n = n + 1
        if not reserved[key]
          and not (p ~= '' and (taken[p][id] or call('ZSCORE', p, id)))
          and call('EXISTS', key) == 0 and not moved(r, id) then
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
if stampf ~= '' then
  stamp = call('TIME')[1]
  changed[1] = stamp
end
-- (arguments go to the server as the strings they came as: a Lua number would be
-- formatted anew for every command)
local sttl = A[2]
for r = 1, nrec do
  local rp = rpos[r]
  local s, e = rp + 7, rp + 6 + rnh[r]
  if stamp then
    call('HSET', keys[r], idf, rid[r], stampf, stamp, unpack(A, s, e))
  else
    call('HSET', keys[r], idf, rid[r], unpack(A, s, e))
  end
  if ttl > 0 then call('EXPIRE', keys[r], sttl) end
end
local caps = nil
for g = 1, ngroup do
  local c, s, e = gc[g], gs[g], ge[g]
  local code, key = G[s - 3], G[s - 2]
  if c == 104 then
    for i = s, e, 2 do call('HINCRBY', key, G[i], G[i + 1]) end
  elseif c == 79 then
    -- the outbox: every record's key, final ids, in record order; the outbox named in
    -- its registry; the writer's lease renewed (args: registry, lease key, lease ms)
    for i = 1, nrec, CH do call('RPUSH', key, unpack(keys, i, math.min(i + CH - 1, nrec))) end
    call('SADD', G[s], key)
    call('SET', G[s + 1], '1', 'PX', G[s + 2])
  else
    local cmd
    if c == 90 or c == 122 then cmd = 'ZADD' elseif c == 83 or c == 115 then cmd = 'SADD'
    else cmd = 'RPUSH' end
    if remap and (c == 90 or c == 83 or c == 76) then
      local l = {}
      if c == 90 then
        for i = s, e, 2 do l[#l + 1] = G[i]; l[#l + 1] = remap[G[i + 1]] or G[i + 1] end
      else
        for i = s, e do l[#l + 1] = remap[G[i]] or G[i] end
      end
      call(cmd, key, unpack(l))
    else
      call(cmd, key, unpack(G, s, e))
    end
    if #code > 1 then
      caps = caps or {}
      caps[key] = code
    end
  end
end
if caps then
  -- keep the cap highest: the rank range 0 .. -(cap + 1), formatted once per cap
  local stops = {}
  for key, code in pairs(caps) do
    local stop = stops[code]
    if stop == nil then
      stop = '-' .. (tonumber(string.sub(code, 2)) + 1)
      stops[code] = stop
    end
    call('ZREMRANGEBYRANK', key, '0', stop)
  end
end
return changed
