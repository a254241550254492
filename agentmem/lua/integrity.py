"""The Lua scripts of :mod:`agentmem.integrity`: each checks (and, in ``fix`` mode, repairs)
one bounded slice of the key space atomically.

Every script receives its first argument ``mode``: ``'check'`` only reports, ``'fix'``
also repairs what it found, inside the same script, so a removal or re-add is decided
on the server against the state of that moment (no writer interleaves with a script).
Keys are rendered from the layout's patterns, passed as arguments (``{name}``
placeholders replaced in Lua), so the scripts hard-code no key name.
"""

from __future__ import annotations

from agentmem.lua.scripts import SIM_AGENTS, Script

_COMMON = SIM_AGENTS + r"""
local call, unpack = redis.call, unpack
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
-- the hash of a simulation-level member {agent_id}-{step}-{rest}, found as SIM_FETCH
-- finds it: every split before '-<digits>-', nearest the end first. Returns the key
-- of the existing hash (or nil) and its agent (or the first candidate agent).
local function sim_hash(id, prefix, middle, suffix)
  local agents = sim_agents(id, '')
  for _, agent in ipairs(agents) do
    local key = prefix .. agent .. middle .. id .. suffix
    if call('EXISTS', key) == 1 then return key, agent end
  end
  return nil, agents[1]
end
local function read_filter(pos)
  local n = tonumber(ARGV[pos])
  if n == 0 then return nil end
  local f = {}
  for i = pos + 1, pos + n do f[ARGV[i]] = true end
  return f
end
local function chunked(cmd, key, list, pre)
  for i = 1, #list, 1000 do
    if pre then call(cmd, key, pre, unpack(list, i, math.min(i + 999, #list)))
    else call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
  end
end
"""

ORPHANS = Script("integrity_orphans", "#!lua\n" + _COMMON + r"""
-- ARGV: mode, key, cursor, count, 'z'|'s', 'a'|'s', p1, p2, p3, nfilter, filter...
-- 'a': members are ids of one agent, hash = p1 .. id .. p2; 's': simulation-level ids.
-- One ZSCAN/SSCAN step; returns {next cursor, orphan ids...}; fix: removes them.
local key, kind, res, p1, p2, p3 = ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local filter = read_filter(10)
local r, members
if kind == 'z' then
  r = call('ZSCAN', key, ARGV[3], 'COUNT', ARGV[4])
  members = {}
  for i = 1, #r[2], 2 do members[#members + 1] = r[2][i] end
else
  r = call('SSCAN', key, ARGV[3], 'COUNT', ARGV[4])
  members = r[2]
end
local out, gone = {r[1]}, {}
for _, m in ipairs(members) do
  local orphan
  if res == 'a' then orphan = call('EXISTS', p1 .. m .. p2) == 0
  else
    local hk, agent = sim_hash(m, p1, p2, p3)
    orphan = hk == nil and (filter == nil or (agent ~= nil and filter[agent] == true))
  end
  if orphan then out[#out + 1] = m; gone[#gone + 1] = m end
end
if fix then chunked(kind == 'z' and 'ZREM' or 'SREM', key, gone) end
return out
""")

LIST = Script("integrity_list", "#!lua\n" + _COMMON + r"""
-- ARGV: mode, list key, start, count, prefix, middle, suffix, nfilter, filter...
-- Reads one range; returns {entries read, {orphans}, {live ids}}; fix: removes the
-- orphans (replaced by a marker no id can equal, then one LREM).
local key, start = ARGV[2], tonumber(ARGV[3])
local filter = read_filter(8)
local ids = call('LRANGE', key, start, start + tonumber(ARGV[4]) - 1)
local mark = '\0agentmem:integrity:removed'
local orphans, live = {}, {}
for i, id in ipairs(ids) do
  local hk, agent = sim_hash(id, ARGV[5], ARGV[6], ARGV[7])
  if filter == nil or (agent ~= nil and filter[agent]) then
    if hk then live[#live + 1] = id
    else
      orphans[#orphans + 1] = id
      if fix then call('LSET', key, start + i - 1, mark) end
    end
  end
end
if fix and #orphans > 0 then call('LREM', key, #orphans, mark) end
return {#ids, orphans, live}
""")

STEPS = Script("integrity_steps", "#!lua\n" + _COMMON + r"""
-- ARGV: mode, steps key, cursor, count, step-set prefix, step-set suffix, prefix,
-- middle, suffix. One ZSCAN step of the steps zset; a step is an orphan when its
-- step set holds no action whose hash exists. Returns {next cursor, orphan steps...}.
local key = ARGV[2]
local r = call('ZSCAN', key, ARGV[3], 'COUNT', ARGV[4])
local out, gone = {r[1]}, {}
for i = 1, #r[2], 2 do
  local step = r[2][i]
  local skey = ARGV[5] .. step .. ARGV[6]
  local live, c = false, '0'
  if call('EXISTS', skey) == 1 then
    repeat
      local s = call('SSCAN', skey, c, 'COUNT', 100)
      c = s[1]
      for _, m in ipairs(s[2]) do
        if sim_hash(m, ARGV[7], ARGV[8], ARGV[9]) then live = true; break end
      end
    until live or c == '0'
  end
  if not live then out[#out + 1] = step; gone[#gone + 1] = step end
end
if fix then chunked('ZREM', key, gone) end
return out
""")

AGENT_INDICES = r"""
-- The Z-order code of the grid cell of (x, y): agentmem.plans.grid.code, step for step.
local function grid_code(x, y, cell)
  local function c(v)
    local n = math.floor(v / cell) + 33554432
    if n < 0 then n = 0 elseif n > 67108863 then n = 67108863 end
    return n
  end
  local cx, cy = c(x), c(y)
  local code, w = 0, 1
  for _ = 1, 26 do
    code = code + (cx % 2) * w + (cy % 2) * 2 * w
    cx = math.floor(cx / 2)
    cy = math.floor(cy / 2)
    w = w * 4
  end
  return code
end
-- Is the action (fields t, HMGET reply f: simulation, step, type, target, reward,
-- position_x, position_y) in each agent-level index it belongs in (patterns of the
-- timeline, types, targets, rewards and grid; cell: the grid's cell size)?
-- need(family, present, add) records a miss and, when fixing, adds it. A grid entry
-- with another score than the position's code counts as missing (fix: rescored).
-- Returns the grid code (nil without a position).
local function agent_indices(t, id, f, p_tl, p_ty, p_tg, p_rw, p_gr, cell, need)
  local k = render(p_tl, t)
  need('timeline', call('ZSCORE', k, id), function() call('ZADD', k, f[2], id) end)
  local kt = render(p_ty, t)
  need('types', call('SISMEMBER', kt, id) == 1, function() call('SADD', kt, id) end)
  if f[4] then
    local kx = render(p_tg, t)
    need('targets', call('SISMEMBER', kx, id) == 1, function() call('SADD', kx, id) end)
  end
  if f[5] then
    local kr = render(p_rw, t)
    need('rewards', call('ZSCORE', kr, id), function() call('ZADD', kr, f[5], id) end)
  end
  local px, py = tonumber(f[6]), tonumber(f[7])
  if not (px and py) then return nil end
  local code = grid_code(px, py, cell)
  local kg = render(p_gr, t)
  local s = call('ZSCORE', kg, id)
  need('grid', s and tonumber(s) == code, function() call('ZADD', kg, code, id) end)
  return code
end
"""
"""Lua (needs ``call`` and ``render``): the agent-level index checks that the
single-server and the cluster integrity scripts share, and ``grid_code``."""

ACTIONS = Script("integrity_actions", "#!lua\n" + _COMMON + AGENT_INDICES + r"""
-- ARGV: mode, patterns (action timeline types targets rewards sim_step sim_steps grid
-- sim_grid), grid cell size, then (agent_id, action_id) pairs. For each action hash
-- that exists: is it in each index it belongs in? fix: adds it from its own fields.
-- Returns per hash {id, agent, simulation, type, step, missing families (comma
-- separated)}.
local P = {unpack(ARGV, 2, 10)}
local cell = tonumber(ARGV[11])
local out = {}
for i = 12, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local id = t.action_id
  local f = redis.pcall('HMGET', render(P[1], t), 'simulation_id', 'step_number',
                        'action_type', 'action_target_id', 'reward', 'position_x',
                        'position_y')
  if f.err == nil and f[1] and f[2] and f[3] then
    t.simulation_id, t.step_number, t.action_type, t.action_target_id = f[1], f[2], f[3], f[4]
    local miss = {}
    local function need(name, present, add)
      if not present then miss[#miss + 1] = name; if fix then add() end end
    end
    local code = agent_indices(t, id, f, P[2], P[3], P[4], P[5], P[8], cell, need)
    local ks = render(P[6], t)
    need('sim_step', call('SISMEMBER', ks, id) == 1, function() call('SADD', ks, id) end)
    if code then
      local kg = render(P[9], t)
      local sc = call('ZSCORE', kg, id)
      need('sim_grid', sc and tonumber(sc) == code, function() call('ZADD', kg, code, id) end)
    end
    local kz = render(P[7], t)
    need('sim_steps', call('ZSCORE', kz, f[2]), function() call('ZADD', kz, f[2], f[2]) end)
    out[#out + 1] = id; out[#out + 1] = t.agent_id; out[#out + 1] = f[1]
    out[#out + 1] = f[3]; out[#out + 1] = f[2]; out[#out + 1] = table.concat(miss, ',')
  end
end
return out
""")

LISTED = Script("integrity_listed", "#!lua\n" + _COMMON + r"""
-- ARGV: mode, action pattern, sim_actions pattern, then (agent_id, action_id) pairs
-- the client did not see in the simulation list. Re-checks with LPOS; returns the
-- (agent_id, action_id) pairs whose hash exists and whose simulation list lacks
-- them; fix: RPUSHes them.
local out = {}
for i = 4, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local sim = call('HGET', render(ARGV[2], t), 'simulation_id')
  if sim then
    t.simulation_id = sim
    local lk = render(ARGV[3], t)
    if not call('LPOS', lk, t.action_id) then
      out[#out + 1] = t.agent_id; out[#out + 1] = t.action_id
      if fix then call('RPUSH', lk, t.action_id) end
    end
  end
end
return out
""")

IM = Script("integrity_im", "#!lua\n" + _COMMON + r"""
-- ARGV: mode, im_action pattern, im_timeline pattern, then (agent_id, action_id)
-- pairs. Returns the (agent_id, action_id) pairs of existing IM hashes missing
-- from the IM timeline; fix: adds them, scored by their step_number.
local out = {}
for i = 4, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local f = redis.pcall('HGET', render(ARGV[2], t), 'step_number')
  if type(f) == 'string' then
    local k = render(ARGV[3], t)
    if not call('ZSCORE', k, t.action_id) then
      out[#out + 1] = t.agent_id; out[#out + 1] = t.action_id
      if fix then call('ZADD', k, f, t.action_id) end
    end
  end
end
return out
""")

COUNTS = Script("integrity_counts", "#!lua\n" + _COMMON + r"""
-- ARGV: mode ('count'|'check'|'fix'), list key, start, stop, simulation id, counter
-- key, prefix, middle, suffix, then (type, count) pairs to add. Counts the existing
-- action hashes of the simulation per type over one range of its list (ids counted
-- once). 'count' returns {type, n, ...}; otherwise compares with the counter hash
-- and returns {type, stored ('' absent), true count, ...} for each wrong field;
-- 'fix' rewrites those (a true count of 0 removes the field).
local mode, lk, sim, ck = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local counts, seen = {}, {}
for _, id in ipairs(call('LRANGE', lk, ARGV[3], ARGV[4])) do
  if not seen[id] then
    seen[id] = true
    local hk = sim_hash(id, ARGV[7], ARGV[8], ARGV[9])
    if hk then
      local f = call('HMGET', hk, 'simulation_id', 'action_type')
      if f[1] == sim and f[2] then counts[f[2]] = (counts[f[2]] or 0) + 1 end
    end
  end
end
for i = 10, #ARGV, 2 do counts[ARGV[i]] = (counts[ARGV[i]] or 0) + tonumber(ARGV[i + 1]) end
local out = {}
if mode == 'count' then
  for t, n in pairs(counts) do out[#out + 1] = t; out[#out + 1] = tostring(n) end
  return out
end
local stored, have = call('HGETALL', ck), {}
for i = 1, #stored, 2 do
  local t, v = stored[i], stored[i + 1]
  local want = counts[t] or 0
  have[t] = true
  if want == 0 or v ~= tostring(want) then
    out[#out + 1] = t; out[#out + 1] = v; out[#out + 1] = tostring(want)
    if fix then
      if want == 0 then call('HDEL', ck, t) else call('HSET', ck, t, want) end
    end
  end
end
for t, n in pairs(counts) do
  if not have[t] and n > 0 then
    out[#out + 1] = t; out[#out + 1] = ''; out[#out + 1] = tostring(n)
    if fix then call('HSET', ck, t, n) end
  end
end
return out
""")

ALL = (ORPHANS, LIST, STEPS, ACTIONS, LISTED, IM, COUNTS)
