#!lua
-- to_im_sim: the simulation-slot part of to_im on a Redis Cluster.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: the simulation-level key shapes, the simulation id, (id, step, type) triples
-- Reply: the ids of keys of the wrong type (left untouched)
-- The simulation-slot part of TO_IM on a Redis Cluster. ARGV: the simulation-level key
-- shapes (sim_actions pre suf, sim_step pre mid suf, sim_steps pre suf, sim_by_type pre
-- suf, sim_grid pre mid suf), the simulation id, then (id, step, type) triples from
-- TO_IM_AGENT. Removes each id from the list, its step set and its step's grid (and an
-- emptied step from the steps zset); the type
-- counter goes down only when the list held the id, so a second run (or a repair that
-- came first) changes nothing. Returns the ids of keys of the wrong type (untouched).
local A = ARGV
local sim = A[13]
local sa = A[1] .. sim .. A[2]
local st, sb = A[6] .. sim .. A[7], A[8] .. sim .. A[9]
local function ok(key, typ)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == typ
end
local fixed = ok(sa, 'list') and ok(st, 'zset') and ok(sb, 'hash')
local refused = {}
for i = 14, #A, 3 do
  local id, step, typ = A[i], A[i + 1], A[i + 2]
  local sk = A[3] .. sim .. A[4] .. step .. A[5]
  local sg = A[10] .. sim .. A[11] .. step .. A[12]
  if not (fixed and ok(sk, 'set') and ok(sg, 'zset')) then
    refused[#refused + 1] = id
  else
    if redis.call('LREM', sa, 1, id) > 0 then
      if redis.call('HINCRBY', sb, typ, -1) <= 0 then redis.call('HDEL', sb, typ) end
    end
    redis.call('SREM', sk, id)
    redis.call('ZREM', sg, id)
    if redis.call('SCARD', sk) == 0 then redis.call('ZREM', st, step) end
  end
end
return refused
