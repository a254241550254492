#!lua
-- write_floor: the write script's writes and nothing else, for benchmarks/writecost.py
-- (not part of the library: the cost of the same commands issued from Lua, no checks).
-- KEYS: none: every key is built from ARGV
-- ARGV: those of agentmem/lua/src/core/write.lua (one MessagePack array, documented in agentmem/plans/writeargs.py)
-- Reply: {stamp}: no key is checked, no id is decided (each record gets the id it came with)
-- The write phase of write.lua for a call where every check passes and no id is taken;
-- it must follow that script's argument layout.
local A = cmsgpack.unpack(ARGV[1])
local unpack, tonumber, call, byte = unpack, tonumber, redis.call, string.byte
local CH = 1000
local nrec, ttl, idf, stampf = tonumber(A[1]), tonumber(A[2]), A[3], A[4]
local nscope = tonumber(A[5])
local pos = 6 + 6 * nscope
local rpos, rid, keys, rnh = {}, {}, {}, {}
for r = 1, nrec do
  local s = 6 * tonumber(A[pos + 3])
  local id, nh = A[pos + 2], tonumber(A[pos + 6])
  rpos[r], rid[r], rnh[r] = pos, id, nh
  keys[r] = A[s] .. id .. A[s + 1]
  pos = pos + 7 + nh
end
local nprobe = tonumber(A[pos]); pos = pos + 1
for p = 1, nprobe do pos = pos + 2 + tonumber(A[pos + 1]) end
local ngroup = tonumber(A[pos]); pos = pos + 1
local gc, gs, ge = {}, {}, {}
for g = 1, ngroup do
  local n = tonumber(A[pos + 2])
  gc[g], gs[g], ge[g] = byte(A[pos]), pos + 3, pos + 2 + n
  pos = pos + 3 + n
end
local stamp = nil
if stampf ~= '' then stamp = call('TIME')[1] end
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
  local code, key = A[s - 3], A[s - 2]
  if c == 104 then
    for i = s, e, 2 do call('HINCRBY', key, A[i], A[i + 1]) end
  elseif c == 79 then
    for i = 1, nrec, CH do call('RPUSH', key, unpack(keys, i, math.min(i + CH - 1, nrec))) end
    call('SADD', A[s], key)
    call('SET', A[s + 1], '1', 'PX', A[s + 2])
  else
    local cmd
    if c == 90 or c == 122 then cmd = 'ZADD' elseif c == 83 or c == 115 then cmd = 'SADD'
    else cmd = 'RPUSH' end
    call(cmd, key, unpack(A, s, e))
    if #code > 1 then
      caps = caps or {}
      caps[key] = code
    end
  end
end
if caps then
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
return {stamp or ''}
