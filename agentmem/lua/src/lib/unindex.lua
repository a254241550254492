-- lib/unindex.lua: a part included by scripts (see agentmem/lua/loader.py).
-- The index entries of a stored record, rendered on the server from its hash, and
-- their removal. A section of ARGV (agentmem/plans/change.py writes it):
--   hash_key id nix <nix indices> retired nextra <nextra set keys>
-- an index: kind member nparts <parts> nwitness <parts>; kind 'z' sorted set, 's' set,
-- 'l' list, 'h' counter ('z<cap>': a sorted set capped to its highest <cap>, as the
-- write's group codes); member '' for the record id, else the hash field whose value is
-- the member (the counted field of a counter); a part 'L<text>' or 'F<field>'; the
-- witness (sorted sets and sets of field values): a set of ids whose emptiness
-- removes the value; of a capped sorted set of ids: the sorted set it holds the highest
-- entries of (the timeline of the relative index), from which it is refilled once an
-- entry left it (lib/refill.lua); retired: nparts <parts> scope_field order_field
-- (nparts 0: none).
--!include lib/refill.lua
local function template(pos)
  local n = tonumber(ARGV[pos])
  local parts = {}
  for i = 1, n do parts[i] = ARGV[pos + i] end
  return parts, pos + n + 1
end
local function render(parts, h)
  local out = {}
  for i, p in ipairs(parts) do
    if string.byte(p) == 76 then out[i] = string.sub(p, 2)
    else
      local v = h[string.sub(p, 2)]
      if v == nil or v == '' then return nil end
      out[i] = v
    end
  end
  return table.concat(out)
end
local function section(pos)
  local sec = {key = ARGV[pos], id = ARGV[pos + 1], ix = {}, extra = {}}
  pos = pos + 3
  for i = 1, tonumber(ARGV[pos - 1]) do
    local code = ARGV[pos]
    local ix = {kind = string.sub(code, 1, 1), cap = tonumber(string.sub(code, 2)),
      member = ARGV[pos + 1]}
    ix.parts, pos = template(pos + 2)
    ix.witness, pos = template(pos)
    sec.ix[i] = ix
  end
  sec.retired, pos = template(pos)
  if #sec.retired > 0 then
    sec.rscope, sec.rorder = ARGV[pos], ARGV[pos + 1]
    pos = pos + 2
  end
  local nextra = tonumber(ARGV[pos])
  for i = 1, nextra do sec.extra[i] = ARGV[pos + i] end
  return sec, pos + nextra + 1
end
local function as_map(flat)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
local TYPES = {z = 'zset', s = 'set', l = 'list', h = 'hash'}
-- the entries of the record of hash h: {kind, key, member, witness key or false, by value,
-- cap or nil}
local function entries(sec, h)
  local out = {}
  for _, ix in ipairs(sec.ix) do
    local key = render(ix.parts, h)
    local member = sec.id
    if ix.member ~= '' then member = h[ix.member] end
    if key and member then
      local w = false
      if #ix.witness > 0 then w = render(ix.witness, h) or false end
      out[#out + 1] = {ix.kind, key, member, w, ix.member ~= '', ix.cap}
    end
  end
  return out
end
-- the first key of ops that holds another type than its entry needs, or nil
local function wrong_type(ops)
  for _, op in ipairs(ops) do
    local t = redis.call('TYPE', op[2])['ok']
    if t ~= 'none' and t ~= TYPES[op[1]] then return op[2] end
  end
  return nil
end
-- remove the entries (skip[key .. '\0' .. member]: a list entry kept in place); the
-- members that are field values are left to drop_values. A capped sorted set that lost
-- the member is refilled from its witness once every entry is removed (so that it holds
-- the highest entries of what remains: docs/keyspace.md, the relative index), to its cap
-- or to the size it had, whichever is larger.
local function unindex(ops, skip)
  local refills = {}
  for _, op in ipairs(ops) do
    local kind, key, member = op[1], op[2], op[3]
    if kind == 'h' then
      if redis.call('HINCRBY', key, member, -1) <= 0 then redis.call('HDEL', key, member) end
    elseif kind == 'l' then
      if not skip[key .. '\0' .. member] then redis.call('LREM', key, 1, member) end
    elseif not op[5] then
      if kind == 'z' then
        local size = op[6] and op[4] and redis.call('ZCARD', key)
        if redis.call('ZREM', key, member) == 1 and size then
          refills[#refills + 1] = {key, op[4], math.max(op[6], size)}
        end
      else redis.call('SREM', key, member) end
    end
  end
  for _, r in ipairs(refills) do refill(r[1], r[2], r[3]) end
end
-- sorted sets and sets of field values: a value goes when its witness set is empty
local function drop_values(ops)
  for _, op in ipairs(ops) do
    if op[5] and op[4] and (op[1] == 'z' or op[1] == 's')
        and redis.call('SCARD', op[4]) == 0 then
      if op[1] == 'z' then redis.call('ZREM', op[2], op[3])
      else redis.call('SREM', op[2], op[3]) end
    end
  end
end
-- an id once given is not given again: the retired mark of the record's scope is raised
-- to its order (see docs/keyspace.md, "Ids for the life of the data")
local function retire(sec, h)
  if #sec.retired == 0 then return end
  local key, scope, order = render(sec.retired, h), h[sec.rscope], tonumber(h[sec.rorder])
  if not (key and scope and order) then return end
  local mark = tonumber(redis.call('HGET', key, scope))
  if not mark or order > mark then redis.call('HSET', key, scope, order) end
end
