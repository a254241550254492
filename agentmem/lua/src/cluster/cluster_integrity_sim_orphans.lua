#!lua
-- cluster_integrity_sim_orphans: remove orphans from a simulation's indices.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, list key, steps key, n, ids, (step, set key, m, ids) groups
-- Reply: the steps left with an empty set
-- ARGV: mode, list key, steps zset key, n, n list ids, then groups (step, step set key,
-- m, m ids). Ids the client found without a hash (in their agents' slots). fix: LREM
-- each list id, SREM each group's ids and ZREM a step whose set is left empty.
-- Returns the steps with an empty set (removed in fix mode).
local call = redis.call
local fix = ARGV[1] == 'fix'
local lk, zk = ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
if fix then
  for i = 5, 4 + n do call('LREM', lk, 0, ARGV[i]) end
end
local out = {}
local i = 5 + n
while i <= #ARGV do
  local step, sk, m = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local left = call('SCARD', sk)
  if fix then
    for j = i + 3, i + 2 + m do call('SREM', sk, ARGV[j]) end
    left = call('SCARD', sk)
  else
    left = left - m
  end
  if left <= 0 then
    out[#out + 1] = step
    if fix then call('ZREM', zk, step) end
  end
  i = i + 3 + m
end
return out
