"""Server-side scripts of the memory tiers (see ``docs/tiers.md``).

- :data:`TO_IM` moves actions of one agent from short-term memory (STM) to
  intermediate memory (IM): each action's compressed hash and IM timeline
  entry are written and the action leaves **every** short-term index, the
  relative index and the simulation-level ones included. Atomic per action,
  many actions per call.
- :data:`TO_IM_AGENT` / :data:`TO_IM_SIM`: the same move split in two on a Redis
  Cluster, where an agent's keys and a simulation's keys live in different slots:
  the agent-slot part (atomic per agent) reports what the simulation-slot part then
  removes (see ``docs/cluster.md``).
- :data:`EVICT_IM` deletes IM entries (after the archive has them).
- :data:`HISTORY` reads an agent's STM and IM timelines as one sequence.

Key shapes come from the layout (``Shapes``), so the scripts hold no key names.
"""

from __future__ import annotations

from agentmem.lua.scripts import SORT_ROWS, Script


def _to_im(name: str, *, split: bool) -> Script:
    """TO_IM (one server: everything, atomic per action) or TO_IM_AGENT (a cluster's
    agent-slot part, which reports what TO_IM_SIM removes in the simulation's slot):
    one source, so the two cannot drift apart."""
    head = (r"""#!lua
-- The agent-slot part of TO_IM on a Redis Cluster. ARGV as TO_IM (the simulation-level
-- shapes are passed but not used). Writes the IM hash and timeline entry and removes
-- the action from the agent's STM hash and agent-level indices. Returns {moved ids,
-- missing ids, refused ids, {simulation, id, step, type, ...}} for TO_IM_SIM.
""" if split else r"""#!lua
-- ARGV: im_ttl, then the key shapes (see agentmem/tiers/maintenance.py Shapes.argv), then
-- n and n pairs (action id, importance). Returns {moved ids, missing ids, refused ids}.
""")
    # every key an action touches must be absent or of its type, else nothing of it moves
    sim_check = "" if split else r"""
    local sa, sk, st, sb, sg
    if good and sim then
      sa, sk = sapre .. sim .. sasuf, sspre .. sim .. ssmid .. step .. sssuf
      st, sb = stpre .. sim .. stsuf, sbpre .. sim .. sbsuf
      sg = sgpre .. sim .. sgmid .. step .. sgsuf
      good = ok(sa, 'list') and ok(sk, 'set') and ok(st, 'zset') and ok(sb, 'hash')
        and ok(sg, 'zset')
    end"""
    sim_part = r"""
      if sim then
        sims[#sims + 1] = sim; sims[#sims + 1] = id
        sims[#sims + 1] = step; sims[#sims + 1] = typ
      end""" if split else r"""
      if sim then
        redis.call('LREM', sa, 1, id)
        redis.call('SREM', sk, id)
        redis.call('ZREM', sg, id)
        if redis.call('SCARD', sk) == 0 then redis.call('ZREM', st, step) end
        if redis.call('HINCRBY', sb, typ, -1) <= 0 then redis.call('HDEL', sb, typ) end
      end"""
    result = "{moved, missing, refused, sims}" if split else "{moved, missing, refused}"
    return Script(name, head + r"""local A = ARGV
local ttl = tonumber(A[1])
local hpre, hsuf, tl, rel, rw = A[2], A[3], A[4], A[5], A[6]
local tpre, tsuf, xpre, xsuf = A[7], A[8], A[9], A[10]
local sapre, sasuf, sspre, ssmid, sssuf = A[11], A[12], A[13], A[14], A[15]
local stpre, stsuf, sbpre, sbsuf = A[16], A[17], A[18], A[19]
local ipre, isuf, itl = A[20], A[21], A[22]
local grid, sgpre, sgmid, sgsuf = A[23], A[24], A[25], A[26]
local n = tonumber(A[27])
local function ok(key, typ)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == typ
end
local fixed = ok(tl, 'zset') and ok(rel, 'zset') and ok(rw, 'zset') and ok(itl, 'zset')
  and ok(grid, 'zset')
local moved, missing, refused, sims = {}, {}, {}, {}
for i = 0, n - 1 do
  local id, imp = A[28 + 2 * i], A[29 + 2 * i]
  local key = hpre .. id .. hsuf
  local ikey = ipre .. id .. isuf
  local h = redis.call('HMGET', key, 'simulation_id', 'step_number', 'agent_id',
    'action_type', 'reward', 'action_target_id')
  local sim, step, agent, typ, rwd, tgt = h[1], h[2], h[3], h[4], h[5], h[6]
  if not typ or not step or not agent then
    missing[#missing + 1] = id
  else
    local good = fixed and ok(key, 'hash') and ok(ikey, 'hash') and ok(tpre .. typ .. tsuf, 'set')
    if good and tgt then good = ok(xpre .. tgt .. xsuf, 'set') end""" + sim_check + r"""
    if not good then
      refused[#refused + 1] = id
    else
      -- IM keeps the reward to 6 significant digits (the archive has it exactly)
      local r6 = '0'
      if rwd then r6 = string.format('%.6g', tonumber(rwd)) end
      local f = {'action_id', id, 'simulation_id', sim or '', 'step_number', step,
        'agent_id', agent, 'action_type', typ, 'reward', r6, 'importance', imp}
      if tgt then f[#f + 1] = 'action_target_id'; f[#f + 1] = tgt end
      redis.call('HSET', ikey, unpack(f))
      if ttl > 0 then redis.call('EXPIRE', ikey, ttl) else redis.call('PERSIST', ikey) end
      redis.call('ZADD', itl, step, id)
      redis.call('DEL', key)
      redis.call('ZREM', tl, id)
      redis.call('ZREM', rel, id)
      redis.call('ZREM', rw, id)
      redis.call('ZREM', grid, id)
      redis.call('SREM', tpre .. typ .. tsuf, id)
      if tgt then redis.call('SREM', xpre .. tgt .. xsuf, id) end""" + sim_part + r"""
      moved[#moved + 1] = id
    end
  end
end
return """ + result + "\n")


TO_IM = _to_im("to_im", split=False)
TO_IM_AGENT = _to_im("to_im_agent", split=True)

TO_IM_SIM = Script("to_im_sim", r"""#!lua
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
""")

EVICT_IM = Script("evict_im", r"""#!lua
-- ARGV: IM hash prefix, suffix, IM timeline, ids... Deletes each IM hash and its
-- timeline entry. Returns the number of hashes deleted.
local ipre, isuf, itl = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TYPE', itl)['ok']
if t ~= 'none' and t ~= 'zset' then return redis.error_reply('WRONGTYPE ' .. itl) end
local gone = 0
for i = 4, #ARGV do
  gone = gone + redis.call('DEL', ipre .. ARGV[i] .. isuf)
  redis.call('ZREM', itl, ARGV[i])
end
return gone
""")

PIN = Script("pin", r"""#!lua
-- KEYS: the agent's pinned set, the action's STM hash, its IM hash.
-- ARGV: '1' pin | '0' unpin, action id, STM TTL ('' none), IM TTL ('' none).
-- Pin: adds the id to the set and takes the TTL off both hashes. Unpin: removes
-- it and gives each existing hash its tier's TTL again. Atomic. Returns 1.
local pinned, stm, im = KEYS[1], KEYS[2], KEYS[3]
if ARGV[1] == '1' then
  redis.call('SADD', pinned, ARGV[2])
  redis.call('PERSIST', stm)
  redis.call('PERSIST', im)
else
  redis.call('SREM', pinned, ARGV[2])
  if ARGV[3] ~= '' then redis.call('EXPIRE', stm, ARGV[3]) end
  if ARGV[4] ~= '' then redis.call('EXPIRE', im, ARGV[4]) end
end
return 1
""")

HISTORY = Script("history", r"""#!lua flags=no-writes
""" + SORT_ROWS + r"""-- ARGV: STM timeline, STM prefix, suffix, IM timeline, IM prefix, suffix,
-- min, max, rev ('1'|'0'), limit (-1: all). Both timelines by score (step), merged
-- by (step, id); returns {tier, hash, tier, hash, ...} with tier 's' or 'i',
-- skipping ids whose hash is gone.
local tl, hpre, hsuf, itl, ipre, isuf = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local lo, hi, rev, limit = ARGV[7], ARGV[8], ARGV[9] == '1', tonumber(ARGV[10])
local rows = {}
local function take(key, tier)
  local r
  local a, b, extra = lo, hi, {}
  if rev then a, b, extra = hi, lo, {'REV'} end
  if limit >= 0 then extra[#extra + 1] = 'LIMIT'; extra[#extra + 1] = 0;
    extra[#extra + 1] = limit end
  r = redis.call('ZRANGE', key, a, b, 'BYSCORE', 'WITHSCORES', unpack(extra))
  for i = 1, #r, 2 do rows[#rows + 1] = {tonumber(r[i + 1]), r[i], tier} end
end
take(tl, 's')
take(itl, 'i')
sort_rows(rows, rev)
local out = {}
for _, row in ipairs(rows) do
  if limit >= 0 and #out >= 2 * limit then break end
  local key
  if row[3] == 's' then key = hpre .. row[2] .. hsuf else key = ipre .. row[2] .. isuf end
  local h = redis.call('HGETALL', key)
  if #h > 0 then out[#out + 1] = row[3]; out[#out + 1] = h end
end
return out
""")

EVICT_PLAN = Script("evict_plan", r"""#!lua flags=no-writes
-- ARGV: IM hash prefix, suffix, IM timeline, pinned set, capacity, weight. Ranks the
-- agent's unpinned IM entries by (step + importance * weight, importance, id) and
-- returns the lowest ones over the capacity as {id, simulation_id, ...}.
local ipre, isuf, itl, pins = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cap, weight = tonumber(ARGV[5]), tonumber(ARGV[6])
local pinned = {}
for _, id in ipairs(redis.call('SMEMBERS', pins)) do pinned[id] = true end
local r = redis.call('ZRANGE', itl, 0, -1, 'WITHSCORES')
local rows = {}
for i = 1, #r, 2 do
  local id = r[i]
  if not pinned[id] then
    local h = redis.call('HMGET', ipre .. id .. isuf, 'importance', 'simulation_id')
    local imp = tonumber(h[1]) or 0
    rows[#rows + 1] = {tonumber(r[i + 1]) + imp * weight, imp, id, h[2] or ''}
  end
end
local excess = #rows - cap
if excess <= 0 then return {} end
table.sort(rows, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  if x[2] ~= y[2] then return x[2] < y[2] end
  return x[3] < y[3]
end)
local out = {}
for i = 1, excess do out[#out + 1] = rows[i][3]; out[#out + 1] = rows[i][4] end
return out
""")
