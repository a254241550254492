#!lua
-- write_cols: core/write.lua fed columns: the records' keys, index entries and groups are built here, from key templates and one column per stored value.
-- KEYS: none: every key is built from ARGV
-- ARGV: one MessagePack array (agentmem/plans/colwrite.py): plan nrec ttl modes bases ids columns keys outbox; plan = id_field stamp_field hash prefix suffix probe retired retired_scope retired_order moved_prefix moved_suffix scope_columns indexes (each: code 0 score_column member_column kind); a template is an array of literal text at odd places and column numbers at even ones; keys: per index {distinct keys, each record's key number (0: none)}, {the one key, true}: every record's, or {template, false}: every record a key of its own (or none: a value absent), rendered here; false: none; outbox: {outbox key, registry key, lease key, lease ms[, marker key, token]} (the dual writer's group 'O') or false
-- Reply: that of core/write.lua ({stamp, changed positions and ids...}; or {'\0WRONGTYPE', keys...}, {'\0EXISTS', positions...} or {'\0UNSEEDED'} when nothing was written)
-- The client (agentmem/plans/colwrite.py) sends this form only for calls it can state so:
-- every id generated and distinct in its scope (it sends them), the scope's key values
-- present, one server. Everything after the arguments are built is
-- lib/write_body.lua, the same as core/write.lua's.
local C = cmsgpack.unpack(ARGV[1])
local unpack, tonumber, call, byte = unpack, tonumber, redis.call, string.byte
local CH = 1000
local P, nrec = C[1], tonumber(C[2])
local ttl, idf, stampf = tonumber(C[3]), P[1], P[2]
local A = {nrec, C[3], idf, stampf, 0}
local nscope, SB = 0, 0
local G0, G0n = {}, 0  -- the groups, in a table of their own
do
  local V, KK = C[7], C[8]
  local modes, bases, rids = C[4], C[5], C[6] or C[5]
  local onemode = type(modes) == 'string' and modes or nil
  local concat = table.concat

  -- a template rendered for record r; nil when a value it needs is absent
  local function render(t, r)
    local n = #t
    if n == 1 then return t[1] end
    if n == 3 then
      local c = V[t[2]]
      local v = nil
      if c then v = c[r] end
      if v == nil then return nil end
      return t[1] .. v .. t[3]
    end
    local out = {}
    for i = 1, n do
      local x = t[i]
      if i % 2 == 0 then
        local c = V[x]
        x = nil
        if c then x = c[r] end
        if x == nil then return nil end
      end
      out[i] = x
    end
    return concat(out)
  end

  local hashc, ptpl, stpl, qtpl, rtpl = P[3], P[4], P[5], P[6], P[7]
  local rsc, roc, mptpl, mstpl, scols, IX = P[8], P[9], P[10], P[11], P[12], P[13]
  local nix = #IX
  local rsv, rov = V[rsc], V[roc]
  local sv = scols and #scols == 1 and V[scols[1]] or nil
  -- the hash's columns that hold any value, and their field names
  local hcol, hname = {}, {}
  for i = 1, #hashc, 2 do
    local c = V[hashc[i]]
    if c then
      hcol[#hcol + 1] = c
      hname[#hname + 1] = hashc[i + 1]
    end
  end
  local nhash = #hcol
  -- per index: its key template, and the columns of its score and member (false: none
  -- or no value; true: the member is the record id)
  local ikeys, icodes, iscore, imember, ikind, icode = {}, {}, {}, {}, {}, {}
  local opre, ocol, osuf = {}, {}, {}
  for k = 1, nix do
    local ix = IX[k]
    icode[k], ikind[k] = ix[1], ix[5]
    ikeys[k], icodes[k] = KK[k][1], KK[k][2]
    local t = ikeys[k]
    if icodes[k] == false and #t == 3 then
      -- a key of each record's own, made of one value: rendered inline below
      opre[k], ocol[k], osuf[k] = t[1], V[t[2]] or false, t[3]
    end
    iscore[k], imember[k] = true, true
    if ix[3] > 0 then iscore[k] = V[ix[3]] or false end
    if ix[4] > 0 then imember[k] = V[ix[4]] or false end
  end
  local scopes, sno_of, scache = {}, {}, {}
  local probes, plist_of = {}, {}
  -- groups, numbered in the order their keys first come: each a linked list of entries
  -- (entry e: ea[e] the score or member, eb[e] the member of a sorted set of ids); a
  -- sorted set of field values and counters keep a table per key (one per simulation)
  local gno, gkey, gcode, gkind, gfirst, glast, gargs, gmap = {}, {}, {}, {}, {}, {}, {}, {}
  local ng = 0
  local G, gn = G0, 0
  local ea, eb, enext = {}, {}, {}
  local ne = 0
  -- entry e joins group g (after its last entry), with nargs arguments
  local function link(g, e, nargs)
    local last = glast[g]
    if last then enext[last] = e else gfirst[g] = e end
    glast[g] = e
    gargs[g] = gargs[g] + nargs
  end
  local n = 5
  for r = 1, nrec do
    -- the record's scope: the parts of its key around the id, its probe, retired and
    -- moved keys; cached by the values they are made of
    local ck = nil
    if sv then
      ck = sv[r]
    elseif scols then
      local vals = {}
      for i = 1, #scols do vals[i] = V[scols[i]][r] end
      ck = concat(vals, '\0')
    end
    local sc = nil
    if ck ~= nil then sc = scache[ck] end
    if sc == nil then
      local prefix, suffix = render(ptpl, r), render(stpl, r)
      local pkey = qtpl and render(qtpl, r) or nil
      local rkey = rtpl and render(rtpl, r) or ''
      local mp, ms = '', ''
      if mptpl then mp, ms = render(mptpl, r), render(mstpl, r) end
      local skey = concat({prefix, suffix, pkey or '', rkey, mp, ms}, '\0')
      local no = sno_of[skey]
      if no == nil then
        nscope = nscope + 1
        no = nscope
        sno_of[skey] = no
        local b = #scopes
        scopes[b + 1], scopes[b + 2], scopes[b + 3] = prefix, suffix, pkey or ''
        scopes[b + 4], scopes[b + 5], scopes[b + 6] = rkey, mp, ms
      end
      local pl = false
      if pkey then
        pl = plist_of[pkey]
        if pl == nil then
          pl = {}
          plist_of[pkey] = pl
          probes[#probes + 1] = pkey
        end
      end
      sc = {no, pl}
      if ck ~= nil then scache[ck] = sc end
    end
    -- the record: mode base id scope retired_scope retired_order nh <nh hash args>
    local mode = onemode or modes[r]
    local id = rids[r]
    local rs, ro = '', ''
    if mode == 'g' and rsv and rov then
      local x, y = rsv[r], rov[r]
      if x ~= nil and y ~= nil then rs, ro = x, y end
    end
    A[n + 1], A[n + 2], A[n + 3], A[n + 4], A[n + 5], A[n + 6] = mode, bases[r], id, sc[1], rs, ro
    local at = n + 7
    n = at
    for i = 1, nhash do
      local v = hcol[i][r]
      if v ~= nil then
        A[n + 1], A[n + 2] = hname[i], v
        n = n + 2
      end
    end
    A[at] = n - at
    if sc[2] then
      local pl = sc[2]
      pl[#pl + 1] = id
    end
    -- its index entries, grouped per key: 'Z' (sorted set of ids: score, id), 'z' (of
    -- field values: one score per member, the last), 'A' (sets and lists: members in
    -- record order), 'h' (a count per field value)
    for k = 1, nix do
      local m, s = id, nil
      local mc, scc = imember[k], iscore[k]
      if mc ~= true then m = mc and mc[r] end
      if scc ~= true then s = scc and scc[r] end
      if m and s ~= false and (s ~= nil or scc == true) then
        local codes, kind = icodes[k], ikind[k]
        if not codes then
          -- a key of its own: its group is this entry, written as it comes
          local key, oc = nil, ocol[k]
          if oc == nil then
            key = render(ikeys[k], r)
          elseif oc then
            local v = oc[r]
            if v ~= nil then key = opre[k] .. v .. osuf[k] end
          end
          if key == nil then
            -- a value the key needs is absent: no entry
          elseif kind == 'A' then
            G[gn + 1], G[gn + 2], G[gn + 3], G[gn + 4] = icode[k], key, 1, m
            gn = gn + 4
          elseif kind == 'h' then
            G[gn + 1], G[gn + 2], G[gn + 3], G[gn + 4], G[gn + 5] = icode[k], key, 2, s, '1'
            gn = gn + 5
          else
            G[gn + 1], G[gn + 2], G[gn + 3], G[gn + 4], G[gn + 5] = icode[k], key, 2, s, m
            gn = gn + 5
          end
          if key ~= nil then G0n = G0n + 1 end
        elseif codes == true or codes[r] > 0 then
          local key = ikeys[k][codes == true and 1 or codes[r]]
          local g = gno[key]
          if g == nil then
            ng = ng + 1
            g = ng
            gno[key], gkey[g], gcode[g], gkind[g], gargs[g] = g, key, icode[k], kind, 0
            if kind == 'z' or kind == 'h' then gmap[g] = {} end
          elseif kind == 'Z' then
            gcode[g] = icode[k]  -- a sorted set's group takes the code of its last index
          end
          if kind == 'Z' then
            ne = ne + 1
            ea[ne], eb[ne] = s, m
            link(g, ne, 2)
          elseif kind == 'A' then
            ne = ne + 1
            ea[ne] = m
            link(g, ne, 1)
          else
            -- 'z': one entry per member, the last score; 'h': one per counted value
            local map, v = gmap[g], kind == 'z' and m or s
            local e = map[v]
            if e == nil then
              ne = ne + 1
              if kind == 'z' then ea[ne], eb[ne] = s, m else ea[ne], eb[ne] = 1, s end
              map[v] = ne
              link(g, ne, 2)
            elseif kind == 'z' then
              ea[e] = s
            else
              ea[e] = ea[e] + 1
            end
          end
        end
      end
    end
  end
  -- probes: key n <ids>
  A[n + 1] = #probes
  n = n + 1
  for _, pkey in ipairs(probes) do
    local l = plist_of[pkey]
    A[n + 1], A[n + 2] = pkey, #l
    n = n + 2
    for i = 1, #l do A[n + i] = l[i] end
    n = n + #l
  end
  -- the shared keys' groups: code key n <n args>, at most CH args each (a pair is never
  -- cut: CH is even)
  for g = 1, ng do
    local kind, e, left = gkind[g], gfirst[g], gargs[g]
    while left > 0 do
      local size = math.min(left, CH)
      G[gn + 1], G[gn + 2], G[gn + 3] = gcode[g], gkey[g], size
      gn = gn + 3
      G0n = G0n + 1
      left = left - size
      local stop = gn + size
      if kind == 'A' then
        while gn < stop do
          G[gn + 1] = ea[e]
          gn = gn + 1
          e = enext[e]
        end
      elseif kind == 'h' then  -- field, count (as text)
        while gn < stop do
          G[gn + 1], G[gn + 2] = eb[e], tostring(ea[e])
          gn = gn + 2
          e = enext[e]
        end
      else
        while gn < stop do
          G[gn + 1], G[gn + 2] = ea[e], eb[e]
          gn = gn + 2
          e = enext[e]
        end
      end
    end
  end
  -- the outbox last (core/write.lua's group 'O': outbox key, registry, lease key, ms;
  -- and the marker key and token, when given)
  local O = C[9]
  if O then
    G[gn + 1], G[gn + 2], G[gn + 3], G[gn + 4], G[gn + 5], G[gn + 6] =
      'O', O[1], 3, O[2], O[3], O[4]
    gn = gn + 6
    if O[5] then
      G[gn - 3], G[gn + 1], G[gn + 2] = 5, O[5], O[6]
      gn = gn + 2
    end
    G0n = G0n + 1
  end
  -- the scopes last: scope s's six values at SB + 6s
  SB = n - 5
  for i = 1, #scopes do A[n + i] = scopes[i] end
  A[5] = nscope
end
local pos = 6
--!include lib/write_body.lua
