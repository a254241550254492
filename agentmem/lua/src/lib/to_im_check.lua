-- lib/to_im_check.lua: a part included by scripts (see agentmem/lua/loader.py).
--!include lib/refill.lua
local A = ARGV
local ttl = tonumber(A[1])
local hpre, hsuf, tl, rel, rw = A[2], A[3], A[4], A[5], A[6]
local tpre, tsuf, xpre, xsuf = A[7], A[8], A[9], A[10]
local sapre, sasuf, sspre, ssmid, sssuf = A[11], A[12], A[13], A[14], A[15]
local stpre, stsuf, sbpre, sbsuf = A[16], A[17], A[18], A[19]
local ipre, isuf, itl = A[20], A[21], A[22]
local grid, sgpre, sgmid, sgsuf = A[23], A[24], A[25], A[26]
-- the hash fields, as the layout names them (Shapes.fields): the STM hash's simulation
-- id, step, agent id, type, reward and target (read in this order), then the IM hash's
-- action id, simulation id, step, agent id, type, reward, importance and target
local stm_fields = {A[27], A[28], A[29], A[30], A[31], A[32]}
local imf = {id = A[33], sim = A[34], step = A[35], agent = A[36], typ = A[37], reward = A[38],
  imp = A[39], tgt = A[40]}
local n = tonumber(A[41])
-- after the pairs: the agent's retired marks (a hash; '' none), raised to each moved
-- action's step in its simulation, so that its id is never generated again
local retired = A[42 + 2 * n] or ''
-- then the agent's pinned set ('' or absent: none): a pinned id never moves
local pins = A[43 + 2 * n] or ''
-- then the kind of the types and targets keys: 'z' sorted sets (layout 4), else sets
local ixt = (A[44 + 2 * n] or '') == 'z' and 'zset' or 'set'
local ixrem = ixt == 'zset' and 'ZREM' or 'SREM'
-- then, for each pair in order, the digest of its STM hash as the caller read it (and
-- archived it) ('' or absent: not compared). A hash that differs now was changed since
-- (actions.update): it stays where it is, reported in changed ids, and the next
-- maintain archives the version it holds before it moves it. The digest does not
-- depend on the order HGETALL gives the fields in (a hash table changes it as it
-- rehashes, with no write): for each field, sha1 of <length>:<name><length>:<value>;
-- each 8-hex-digit fifth of those summed over the fields, modulo 2^32; the five sums
-- as decimals joined by '.' (agentmem/tiers/archiving.py hash_digest).
local function digest(key)
  local h = redis.call('HGETALL', key)
  local sums = {0, 0, 0, 0, 0}
  for j = 1, #h, 2 do
    local d = redis.sha1hex(#h[j] .. ':' .. h[j] .. #h[j + 1] .. ':' .. h[j + 1])
    for k = 1, 5 do
      sums[k] = (sums[k] + tonumber(string.sub(d, 8 * k - 7, 8 * k), 16)) % 4294967296
    end
  end
  for k = 1, 5 do sums[k] = string.format('%d', sums[k]) end
  return table.concat(sums, '.')
end
local function ok(key, typ)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == typ
end
local fixed = ok(tl, 'zset') and ok(rel, 'zset') and ok(rw, 'zset') and ok(itl, 'zset')
  and ok(grid, 'zset') and (retired == '' or ok(retired, 'hash'))
  and (pins == '' or ok(pins, 'set'))
-- the relative index's size before the moves: refilled to it from the timeline after them
-- (lib/refill.lua), so that it still holds the newest entries of the timeline
local relsize = fixed and redis.call('ZCARD', rel)
local moved, missing, refused, sims, pinned, changed = {}, {}, {}, {}, {}, {}
for i = 0, n - 1 do
  local id, imp = A[42 + 2 * i], A[43 + 2 * i]
  local seen = A[45 + 2 * n + i] or ''
  local key = hpre .. id .. hsuf
  local ikey = ipre .. id .. isuf
  local h = redis.call('HMGET', key, unpack(stm_fields))
  local sim, step, agent, typ, rwd, tgt = h[1], h[2], h[3], h[4], h[5], h[6]
  if pins ~= '' and redis.call('SISMEMBER', pins, id) == 1 then
    pinned[#pinned + 1] = id
  elseif not typ or not step or not agent then
    missing[#missing + 1] = id
  elseif seen ~= '' and digest(key) ~= seen then
    changed[#changed + 1] = id
  else
    local good = fixed and ok(key, 'hash') and ok(ikey, 'hash') and ok(tpre .. typ .. tsuf, ixt)
    if good and tgt then good = ok(xpre .. tgt .. xsuf, ixt) end
