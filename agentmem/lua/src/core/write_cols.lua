#!lua
-- write_cols: core/write.lua fed columns: the records' keys, index entries and groups are built here, from key templates and one column per stored value.
-- KEYS: none: every key is built from ARGV
-- ARGV: one MessagePack array (agentmem/plans/colwrite.py): plan nrec ttl modes bases ids columns; plan = id_field stamp_field hash prefix suffix probe retired retired_scope retired_order moved_prefix moved_suffix scope_columns indexes; a template is an array of literal text at odd places and column numbers at even ones; false: none
-- Reply: that of core/write.lua ({stamp, changed positions and ids...}; or {'\0WRONGTYPE', keys...} or {'\0EXISTS', positions...} when nothing was written)
-- The client (agentmem/plans/colwrite.py) sends this form only for calls it can state so:
-- every id generated and distinct in its scope (it sends them), the scope's key values
-- present, no outbox, one server. Everything after the arguments are built is
-- lib/write_body.lua, the same as core/write.lua's.
local C = cmsgpack.unpack(ARGV[1])
local unpack, tonumber, call, byte = unpack, tonumber, redis.call, string.byte
local CH = 1000
local P, nrec = C[1], tonumber(C[2])
local ttl, idf, stampf = tonumber(C[3]), P[1], P[2]
local A = {nrec, C[3], idf, stampf, 0}
local nscope, SB = 0, 0
do
  local V = C[7]
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
  local nhash, nix = #hashc, #IX
  local rsv, rov = V[rsc], V[roc]
  local sv = scols and #scols == 1 and V[scols[1]] or nil
  local scopes, sno_of, scache = {}, {}, {}
  local probes, plist_of = {}, {}
  local order, gkind, gcode, glist, gpos, gcnt = {}, {}, {}, {}, {}, {}
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
    for i = 1, nhash, 2 do
      local c = V[hashc[i]]
      if c then
        local v = c[r]
        if v ~= nil then
          A[n + 1], A[n + 2] = hashc[i + 1], v
          n = n + 2
        end
      end
    end
    A[at] = n - at
    if sc[2] then
      local pl = sc[2]
      pl[#pl + 1] = id
    end
    -- its index entries, grouped per key: 'Z' (sorted set of ids: score, id), 'z' (of
    -- field values: one score per member, the last), 'S' 's' 'L' 'l' (members in record
    -- order), 'h' (a count per field value)
    for k = 1, nix do
      local ix = IX[k]
      local key = render(ix[2], r)
      if key ~= nil then
        local m, s = id, nil
        local mc, scc = ix[4], ix[3]
        if mc > 0 then
          local c = V[mc]
          m = nil
          if c then m = c[r] end
        end
        if scc > 0 then
          local c = V[scc]
          if c then s = c[r] end
        end
        if m ~= nil and (scc == 0 or s ~= nil) then
          local l = glist[key]
          local kind = ix[5]
          if l == nil then
            l = {}
            glist[key], gkind[key], gcode[key] = l, kind, ix[1]
            order[#order + 1] = key
            if kind == 'z' or kind == 'h' then gpos[key] = {} end
            if kind == 'h' then gcnt[key] = {} end
          elseif kind == 'Z' then
            gcode[key] = ix[1]  -- a sorted set's group takes the code of its last index
          end
          if kind == 'Z' then
            l[#l + 1] = s
            l[#l + 1] = m
          elseif kind == 'z' then
            local p = gpos[key]
            local at2 = p[m]
            if at2 then
              l[at2] = s
            else
              l[#l + 1] = s
              p[m] = #l
              l[#l + 1] = m
            end
          elseif kind == 'h' then
            local cnt = gcnt[key]
            local c = cnt[s]
            if c then
              cnt[s] = c + 1
            else
              cnt[s] = 1
              l[#l + 1] = s
            end
          else
            l[#l + 1] = m
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
  -- groups: code key n <n args>, at most CH args each
  local ngroup_at = n + 1
  n = n + 1
  local ngroup = 0
  for _, key in ipairs(order) do
    local l = glist[key]
    if gkind[key] == 'h' then
      local cnt, flat = gcnt[key], {}
      for i = 1, #l do
        flat[2 * i - 1] = l[i]
        flat[2 * i] = tostring(cnt[l[i]])
      end
      l = flat
    end
    local code, total = gcode[key], #l
    for s = 1, total, CH do
      local e = math.min(s + CH - 1, total)
      A[n + 1], A[n + 2], A[n + 3] = code, key, e - s + 1
      n = n + 3
      for i = s, e do A[n + i - s + 1] = l[i] end
      n = n + e - s + 1
      ngroup = ngroup + 1
    end
  end
  A[ngroup_at] = ngroup
  -- the scopes last: scope s's six values at SB + 6s
  SB = n - 5
  for i = 1, #scopes do A[n + i] = scopes[i] end
  A[5] = nscope
end
local pos = 6
--!include lib/write_body.lua
