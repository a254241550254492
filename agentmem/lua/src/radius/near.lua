#!lua flags=no-writes
-- near: radius search over a grid index.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, pre, mid, suf, x field, y field, x, y, radius squared, limit, filters, keys, code ranges, simulation id, simulation id field (absent: 'simulation_id'; documented below)
-- Reply: {id, distance, hash, ...} nearest first; mode 'c': candidates {id, step, ...}
--!include lib/bytewise.lua
--!include lib/sim_agents.lua

-- ARGV:
--   mode: 'r' (members are record ids; hash = pre .. id .. suf), 's' (members are the
--     action ids of one simulation step; hash = pre .. agent .. mid .. id .. suf, the
--     agent being what precedes '-<step>-' in the id) or 'c' (as 's', but return the
--     candidates {id, step, ...} without reading any hash: a cluster's first part);
--   pre, mid, suf; x field, y field; x, y, radius squared; limit (-1: all);
--   match field ('' none), n, n accepted values; range field ('' none), lo, hi ('' open);
--   the keys: 'keys' n (key step)... or 'steps' steps_key lo hi key_pre key_suf (the keys
--     of the steps that the sorted set steps_key holds in lo..hi);
--   n, n (lo hi d2) triples of codes, nearest first, disjoint (so that no member is
--     read twice; d2: a lower bound of the squared distance of any position the range
--     can hold within the radius; once limit rows are nearer than the next range's
--     bound, the rest is not read);
--   the simulation id of mode 's' ('': any): a member whose hash belongs to
--     another simulation (an id given again after its action left memory) is skipped;
--   the hash field holding the simulation id (the layout's name for it).
-- Every field is named as the hashes keep it (x, y, match, range, simulation id).
-- Returns {d2, hash, d2, hash, ...} nearest first (ties by id), d2 the squared distance.
local A = ARGV
local mode, pre, mid, suf = A[1], A[2], A[3], A[4]
local xf, yf = A[5], A[6]
local x, y, r2 = tonumber(A[7]), tonumber(A[8]), tonumber(A[9])
local limit = tonumber(A[10])
local mf, nv = A[11], tonumber(A[12])
local accept = nil
if mf ~= '' then
  accept = {}
  for i = 1, nv do accept[A[12 + i]] = true end
end
local p = 13 + nv
local rf, rlo, rhi = A[p], tonumber(A[p + 1]), tonumber(A[p + 2])
p = p + 3
local keys = {}
if A[p] == 'keys' then
  local n = tonumber(A[p + 1])
  for i = 1, n do keys[i] = {A[p + 2 * i], A[p + 2 * i + 1]} end
  p = p + 2 + 2 * n
else
  local steps = redis.call('ZRANGE', A[p + 1], A[p + 2], A[p + 3], 'BYSCORE')
  for i, st in ipairs(steps) do keys[i] = {A[p + 4] .. st .. A[p + 5], st} end
  p = p + 6
end
local nr = tonumber(A[p])
local sim = A[p + 3 * nr + 1] or ''
local sf = A[p + 3 * nr + 2] or 'simulation_id'
local fields = {xf, yf}
if mf ~= '' then fields[#fields + 1] = mf end
local rpos = nil
if rf ~= '' then fields[#fields + 1] = rf; rpos = #fields end
local mpos = mf ~= '' and 3 or nil

-- the hash of a simulation-level member of a step: its first agent whose hash exists
local function sim_hash(id, step)
  for _, agent in ipairs(sim_agents(id, step)) do
    local key = pre .. agent .. mid .. id .. suf
    if sim == '' then
      if redis.call('EXISTS', key) == 1 then return key end
    elseif redis.call('HGET', key, sf) == sim then
      return key
    end
  end
  return nil
end

local rows, cands = {}, {}
local function nearer(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return blt(a[2], b[2])
end
-- one member of a key of step `step`: a candidate (mode 'c') or, when its position is
-- within the radius and it passes the filters, a row
local function take(id, step)
  if mode == 'c' then
    cands[#cands + 1] = id
    cands[#cands + 1] = step
    return
  end
  local hkey
  if mode == 'r' then hkey = pre .. id .. suf else hkey = sim_hash(id, step) end
  if not hkey then return end
  local h = redis.call('HMGET', hkey, unpack(fields))
  local px, py = tonumber(h[1]), tonumber(h[2])
  if not (px and py) then return end
  local dx = px - x
  local dy = py - y
  local d2 = dx * dx + dy * dy
  local keep = d2 <= r2
  if keep and accept then keep = h[mpos] and accept[h[mpos]] or false end
  if keep and rpos then
    local v = tonumber(h[rpos])
    keep = v ~= nil and (not rlo or v >= rlo) and (not rhi or v <= rhi)
  end
  if keep then rows[#rows + 1] = {d2, id, hkey} end
end

if limit == 0 and mode ~= 'c' then return {} end
-- a key with at most nr members between the least and the greatest code of the
-- ranges is read whole, first, from one ZRANGE (of at most nr + 1 members: more, and
-- the key is read range by range): at most nr hashes, where the ranges would cost
-- nr ZRANGEs (the members between the ranges are outside the circle and dropped by
-- the distance test). Rows read early keep the stop below right: every member left
-- unread is still in a range not read yet. Not in mode 'c', whose candidates'
-- hashes are read elsewhere.
local ranged = keys
if mode ~= 'c' and nr > 0 then
  local first, last = 1, 1
  for i = 2, nr do
    if tonumber(A[p + 3 * i - 2]) < tonumber(A[p + 3 * first - 2]) then first = i end
    if tonumber(A[p + 3 * i - 1]) > tonumber(A[p + 3 * last - 1]) then last = i end
  end
  local slo, shi = A[p + 3 * first - 2], A[p + 3 * last - 1]
  ranged = {}
  for _, ks in ipairs(keys) do
    local ids = redis.call('ZRANGE', ks[1], slo, shi, 'BYSCORE', 'LIMIT', 0, nr + 1)
    if #ids <= nr then
      for _, id in ipairs(ids) do take(id, ks[2]) end
    else
      ranged[#ranged + 1] = ks
    end
  end
end
for i = 1, nr do
  if #ranged == 0 then break end
  local lo, hi = A[p + 3 * i - 2], A[p + 3 * i - 1]
  for _, ks in ipairs(ranged) do
    for _, id in ipairs(redis.call('ZRANGE', ks[1], lo, hi, 'BYSCORE')) do
      take(id, ks[2])
    end
  end
  -- every row of the ranges left is at least their bound away: stop once limit rows
  -- are strictly nearer (a tie could still win on its id)
  -- (the limit-th nearest row is nearer than the bound exactly when at least limit
  -- rows are: counted, not sorted, so each range costs its rows once)
  if mode ~= 'c' and limit >= 0 and #rows >= limit and i < nr then
    local bound, closer = tonumber(A[p + 3 * i + 3]), 0
    for _, row in ipairs(rows) do
      if row[1] < bound then
        closer = closer + 1
        if closer >= limit then break end
      end
    end
    if closer >= limit then break end
  end
end
if mode == 'c' then return cands end
table.sort(rows, nearer)
local out = {}
for _, row in ipairs(rows) do
  if limit >= 0 and #out >= 2 * limit then break end
  out[#out + 1] = string.format('%.17g', row[1])
  out[#out + 1] = redis.call('HGETALL', row[3])
end
return out
